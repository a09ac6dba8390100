"""Every long command says how long it will take, as a whole: the whole-run estimate once the first steps are timed,
progress lines every `trainer.progress_every_s` without a terminal (training, validation, the LR range test,
evaluation), and on a CPU one line naming the faster choices when a run would take more than an hour. Assertions are
on the lines' presence and format, never on seconds."""

import logging
import re

import pytest
import torch
from test_budget import FakeClock, _Loader, _StreamLoader, cpu_settings

from tinyimagenet_resnet.model import ResNet
from tinyimagenet_resnet.progress import Progress, duration
from tinyimagenet_resnet.training.callbacks import Callback, RunProgress
from tinyimagenet_resnet.training.engine import Trainer

from conftest import only_run_dir, run_main

TIME = r"\d+ (s|min \d\d s)"
TRAIN_LINE = re.compile(rf"train: step (\d+)/36 \(epoch ([12])/2\) \| [\d.]+ img/s \| elapsed {TIME}( \| ETA {TIME})?$")
# the precision is the CPU's own (precision=auto: bf16 where the CPU has native bf16, fp32 elsewhere)
ESTIMATE = re.compile(
    r"2 epochs \(36 steps\): about \d+ (s|min \d\d s) on this machine \(cpu, (fp32|bf16), [\d.]+ s/step\), "
    r"validations included$"
)
EVERY = ["trainer.progress_bar=false", "trainer.progress_every_s=0.05"]


def lines(proc) -> list[str]:
    return [ln.split(" - ", 1)[1] for ln in (proc.stdout + proc.stderr).splitlines() if " - " in ln]


def test_a_training_without_a_terminal_prints_its_estimate_and_progress_lines(tiny_data, tmp_path):
    args = [f"data.path={tiny_data}", "model.widths=[16,16,16]", "data.batch_size=4", "data.eval_batch_size=1"]
    proc = run_main([*args, "data.num_workers=0", "trainer.epochs=2", *EVERY], cwd=tmp_path)
    out = lines(proc)
    train = [m for m in map(TRAIN_LINE.match, out) if m]
    assert len(train) >= 2 and {m.group(2) for m in train} == {"1", "2"}, out  # both epochs, one run-wide count
    assert [int(m.group(1)) for m in train] == sorted(int(m.group(1)) for m in train)
    assert any(m.group(4) for m in train)  # an ETA of the whole run
    assert sum(bool(ESTIMATE.match(ln)) for ln in out) == 1, out
    assert any(re.match(r"val: batch \d+/20 \| [\d.]+ img/s \| elapsed", ln) for ln in out), out
    assert not any("faster:" in ln for ln in out)  # a run of seconds gets no advice


def test_lr_find_and_evaluate_print_progress_lines(tiny_data, tmp_path, trained_run):
    args = [f"data.path={tiny_data}", "model.widths=[16,16,16]", "data.batch_size=4", "data.num_workers=0", *EVERY]
    proc = run_main([*args, "task=lr_find", "lr_find.num_iters=40"], cwd=tmp_path)
    assert any(re.match(r"lr_find: iteration \d+/40 \| [\d.]+ img/s \| elapsed .* \| ETA", ln) for ln in lines(proc))
    (tmp_path / "eval").mkdir()
    proc = run_main(
        [f"data.path={tiny_data}", "task=evaluate", f"ckpt_path={trained_run}/checkpoints/best.ckpt", *EVERY,
         "data.eval_batch_size=1", "data.num_workers=0"],
        cwd=tmp_path / "eval",
    )  # fmt: skip
    assert any(re.match(r"(val|test): batch \d+/(20|8) \| ", ln) for ln in lines(proc)), lines(proc)
    assert (only_run_dir(tmp_path / "eval") / "metrics.json").is_file()


def test_a_run_of_more_than_an_hour_on_a_cpu_names_the_faster_choices_and_goes_on(caplog):
    # an injected clock: every train step takes 600 s, so 2 epochs of 4 steps are well over an hour
    model = ResNet((1, 1, 1), (8, 8, 8), dropout=0.0, num_classes=3)
    clock = FakeClock(model, train_s=600.0, eval_s=0.0)
    settings = cpu_settings(epochs=2, started_at=0.0)
    optimizer = __import__("torch").optim.SGD(model.parameters(), lr=0.01)
    trainer = Trainer(settings=settings, model=model, optimizer=optimizer, train_loader=_Loader(), val_loader=_Loader(),
                      callbacks=[RunProgress(False, 30.0, "cpu", "fp32")], clock=clock)  # fmt: skip
    RunProgress.WARMUP, RunProgress.TIMED = 1, 2
    try:
        with caplog.at_level(logging.INFO, logger="tinyimagenet_resnet.progress"):
            state = trainer.fit()
    finally:
        RunProgress.WARMUP, RunProgress.TIMED = 2, 5
    assert state.status == "ok" and state.global_step == 8  # it went on
    text = [r.getMessage() for r in caplog.records]
    [estimate] = [t for t in text if "on this machine" in t]
    assert estimate.startswith("2 epochs (8 steps): about 1 h ") and "(cpu, fp32, 600.00 s/step)" in estimate
    [warning] = [t for t in text if "faster:" in t]
    assert "experiment=cpu trainer.budget_minutes=60" in warning and "protocol.scale=smoke" in warning
    assert warning.endswith("It goes on as asked.")


def test_progress_lines_and_durations():
    now = [0.0]
    p = Progress("val", 10, bar=False, every_s=5.0, unit="batch", images_per_unit=100, clock=lambda: now[0])
    now[0] = 4.0
    p.update(2)
    assert p.line() == "val: batch 2/10 | 50.0 img/s | elapsed 4 s | ETA 16 s"
    assert duration(3725) == "1 h 02 min" and duration(75) == "1 min 15 s" and duration(4.4) == "4 s"


class SizeClock:
    """An injected clock where a train step takes `train_s[size]` seconds at its train size (the input's side), the
    first step at each size `first_s` more (kernel set-up), and an eval batch `eval_s`: the step times of a 2-core
    CPU (11x from 16 to 64 px, not the 16x of the pixel count)."""

    def __init__(self, model, train_s: dict[int, float], eval_s: float, first_s: float = 0.0):
        self.now, self.seen = 0.0, set()

        def tick(m, i, o):
            size = i[0].shape[-1]
            if m.training:
                self.now += train_s[size] + (first_s if size not in self.seen else 0.0)
                self.seen.add(size)
            else:
                self.now += eval_s

        model.register_forward_hook(tick)

    def __call__(self) -> float:
        return self.now


class Left(Callback):
    """After each step (and after RunProgress's own): the seconds the run's progress says are left, and the clock."""

    def __init__(self, progress: RunProgress):
        self.progress, self.seen = progress, []

    def on_step(self, trainer, step):
        self.seen.append((step, trainer.state.size_index, self.progress.seconds_left(trainer), trainer.clock()))


def sized_run(settings, train_s, first_s=0.0, train_loader=None, callbacks=(), bar=False):
    """A fit on the stand-in loaders under a SizeClock, with RunProgress (a tqdm bar or lines) and a `Left` after
    it."""
    model = ResNet((1, 1, 1), (8, 8, 8), dropout=0.0, num_classes=3)
    clock = SizeClock(model, train_s, eval_s=0.5, first_s=first_s)
    progress = RunProgress(bar, 1e9, "cpu", "fp32")
    left = Left(progress)
    sgd = torch.optim.SGD(model.parameters(), lr=0.01)
    trainer = Trainer(settings=settings, model=model, optimizer=sgd, train_loader=train_loader or _Loader(),
                      val_loader=_Loader(), callbacks=[*callbacks, progress, left], clock=clock)  # fmt: skip
    return trainer, progress, left, clock


def test_with_progressive_resizing_the_estimate_and_eta_count_each_sizes_steps_at_that_sizes_time(caplog):
    # 10 epochs of 4 steps: 20 at 16 px (1 s each), 12 at 32 (3 s), 8 at 64 (11 s), the first step at each size 5 s
    # more, a validation after each epoch (4 batches of 0.5 s). Timed at 16 px alone, the old estimate said ~60 s
    # for a run of 179 s.
    settings = cpu_settings(epochs=10, started_at=0.0, train_sizes=(16, 32, 64), train_size_fractions=(0.5, 0.3, 0.2))
    trainer, progress, left, clock = sized_run(settings, {16: 1.0, 32: 3.0, 64: 11.0}, first_s=5.0)
    with caplog.at_level(logging.INFO, logger="tinyimagenet_resnet.progress"):
        state = trainer.fit()
    assert state.status == "ok" and state.global_step == 40
    end = clock()
    assert end == 20 * 1.0 + 12 * 3.0 + 8 * 11.0 + 3 * 5.0 + 10 * 4 * 0.5  # 179 s
    # each step counted at the size it ran at; the first two steps and each size's first step left out
    assert progress.step_s == {0: [18.0, 18], 1: [33.0, 11], 2: [77.0, 7]}
    ratio = {step: said / (end - now) for step, _, said, now in left.seen if said is not None and step < 40}
    # at 16 px the larger sizes are scaled by their pixel count: an upper bound, never an underestimate
    assert all(1.0 <= ratio[step] <= 1.5 for step in range(7, 21)), ratio
    # once 32 px is timed, the 64 px steps are scaled from it: within 10%; at 64 px, each size is measured
    assert all(0.95 <= ratio[step] <= 1.1 for step in range(23, 33)), ratio
    assert all(abs(ratio[step] - 1.0) < 0.02 for step in range(34, 40)), ratio
    [estimate] = [r.getMessage() for r in caplog.records if "on this machine" in r.getMessage()]
    assert "(cpu, fp32, 1.00 s/step at 16 px, the larger sizes scaled by pixel count)" in estimate, estimate
    total = re.search(r"about (\d+) min (\d+) s", estimate)
    assert 179 <= int(total[1]) * 60 + int(total[2]) <= 1.5 * 179, estimate
    # the progress line's ETA is the same count
    line = progress.progress.line()
    assert line.startswith("train: step 40/40 (epoch 10/10)") and "ETA 0 s" in line


class _Bar(Callback):
    """After each step (after RunProgress's): the bar as a terminal shows it."""

    def __init__(self, progress: RunProgress):
        self.progress, self.seen = progress, []

    def on_step(self, trainer, step):
        self.seen.append((step, str(self.progress.progress.bar)))


def test_a_training_bar_shows_the_runs_own_eta_and_a_plain_bar_tqdms(capsys):
    # a terminal's bar (trainer.progress_bar=auto on a tty): the run's ETA (size by size, as the progress lines),
    # not tqdm's mean-rate one, which would count the 64 px steps at the 16 px rate
    settings = cpu_settings(epochs=10, started_at=0.0, train_sizes=(16, 32, 64), train_size_fractions=(0.5, 0.3, 0.2))
    trainer, progress, left, clock = sized_run(settings, {16: 1.0, 32: 3.0, 64: 11.0}, first_s=5.0, bar=True)
    bar = _Bar(progress)
    trainer.callbacks.append(bar)
    assert trainer.fit().global_step == 40
    assert progress.progress.bar is None  # closed at the end of the fit
    shown = dict(bar.seen)
    assert len(shown) == 40
    for step, _, said, now in left.seen:
        text = shown[step]
        assert f" {step}/40 " in text and text.startswith(f"train (epoch {(step - 1) // 4 + 1}/10)"), text
        assert "<" not in text, text  # no remaining time of tqdm's own
        if said is None:  # before a step is timed: the steps left at the mean rate so far (the fit starts at 0)
            assert step <= 3 and f"ETA={duration((40 - step) * now / step)}" in text, text
        else:
            assert f"ETA={duration(said)}" in text, text
    assert "train (epoch" in capsys.readouterr().err  # the bar is drawn on stderr, as tqdm draws it

    # a bar given no ETA of its own (validation, evaluation) keeps tqdm's; a new total and a postfix show at once
    p = Progress("val", 10, bar=True, unit="batch")
    p.update(2)
    p.set_total(20)
    p.set_postfix(loss="1.500")
    p.set_detail("final")
    text = str(p.bar)
    assert text.startswith("val (final)") and " 2/20 " in text and "<" in text and "loss=1.500" in text, text
    p.close()
    assert p.bar is None


class _LongLoader(_Loader):
    """A stand-in train loader of 10 batches of 4 an epoch."""

    num_samples = 40

    def __len__(self):
        return 10

    def epoch(self, epoch, skip=0):
        for _ in range(10 - skip):
            yield torch.randn(4, 3, 64, 64), torch.randint(0, 3, (4,))


def test_before_a_validation_the_estimate_counts_one_at_a_third_of_a_64px_train_step_per_image(caplog):
    # 2 epochs of 10 steps, 10 at 16 px (1 s) then 10 at 64 px, estimated at step 7, before any validation: 7 s spent,
    # 3 x 1 s + 10 x 16 s (scaled by pixel count) left, and 2 validations of 16 images at 16 s / 4 images / 3 each
    settings = cpu_settings(epochs=2, started_at=0.0, train_sizes=(16, 64), train_size_fractions=(0.5, 0.5))
    trainer, *_ = sized_run(settings, {16: 1.0, 64: 11.0}, train_loader=_LongLoader())
    with caplog.at_level(logging.INFO, logger="tinyimagenet_resnet.progress"):
        trainer.fit()
    [estimate] = [r.getMessage() for r in caplog.records if "on this machine" in r.getMessage()]
    assert round(7 + 3 * 1.0 + 10 * 16.0 + 2 * 16 * 16.0 / 4 / 3) == 213
    assert estimate.startswith("2 epochs (20 steps): about 3 min 33 s on this machine"), estimate


class _Retime(Callback):
    """A time budget's re-plan after step 3: a re-timing (100 s), then the plan's total steps."""

    def __init__(self, clock):
        self.clock = clock

    def on_step(self, trainer, step):
        if step == 3:
            self.clock.now += 100.0
            trainer.set_total_steps(trainer.total_steps)


def test_a_plan_that_ends_the_run_in_an_earlier_epoch_counts_only_its_validations_and_no_retiming():
    # a plan of 6 steps in epochs of 4 (of 5 configured): epoch 1 ends the run with the full validation
    settings = cpu_settings(epochs=5, started_at=0.0, total_steps=6, steps_per_epoch=4)
    trainer, progress, left, clock = sized_run(settings, {64: 1.0}, train_loader=_StreamLoader())
    trainer.callbacks.insert(0, _Retime(clock))  # before RunProgress, as a budget's BudgetReplan is
    state = trainer.fit()
    assert state.status == "ok" and state.global_step == 6 and len(state.history) == 2
    assert progress.step_s == {0: [3.0, 3]}  # steps 4, 5 and 6: step 3 was followed by the re-timing
    end = clock()
    said = {step: (value, now) for step, _, value, now in left.seen}
    # after step 5: step 6 (1 s) and the run's last validation (16 images at the 2 s / 16 of the one before)
    assert said[5][0] == pytest.approx(end - said[5][1]) == 3.0
