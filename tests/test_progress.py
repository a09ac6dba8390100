"""Every long command says how long it will take, as a whole: the whole-run estimate once the first steps are timed,
progress lines every `trainer.progress_every_s` without a terminal (training, validation, the LR range test,
evaluation), and on a CPU one line naming the faster choices when a run would take more than an hour. Assertions are
on the lines' presence and format, never on seconds."""

import logging
import re

from test_budget import FakeClock, _Loader, cpu_settings

from tinyimagenet_resnet.model import ResNet
from tinyimagenet_resnet.progress import Progress, duration
from tinyimagenet_resnet.training.callbacks import RunProgress
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
