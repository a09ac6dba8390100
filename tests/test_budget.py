"""Time-budgeted runs (trainer.budget_minutes), progressive resizing, the schedules' last step, experiment=cpu and the
time-to-accuracy benchmark, on the tiny fixture. Assertions are on steps and schedules, never on elapsed seconds."""

import json
import signal
import subprocess
import time

import pytest
import torch
from omegaconf import OmegaConf

from tinyimagenet_resnet.artifacts.records import TrainMetrics
from tinyimagenet_resnet.config.loader import compose_config
from tinyimagenet_resnet.training import budget, replan, resizing, runtime, schedules
from tinyimagenet_resnet.training.engine import Trainer
from tinyimagenet_resnet.training.optim import build_optimizer, build_scheduler
from tinyimagenet_resnet.training.settings import TrainSettings

from conftest import forked_runs, only_run_dir, popen_main, run_main, wait_for_epoch

# budgeted runs plan by measured step times: one worker runs them one after the other
pytestmark = pytest.mark.xdist_group("timing")

SMALL = ["model.widths=[16,16,16]", "data.batch_size=8", "data.num_workers=0", "trainer.progress_bar=false"]
# a budget counts from the process's start: a forked run starts at once, a new interpreter spends ~8 s importing
BUDGET = [*SMALL, f"trainer.budget_minutes={0.15 if forked_runs() else 0.4}", "optim=sgd", "optim.lr=0.1"]


@pytest.mark.parametrize("name", ["linear", "cosine", "onecycle"])
def test_each_schedule_with_an_end_reaches_about_zero_on_the_last_step(name):
    cfg = compose_config([f"scheduler={name}"])
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    sched = build_scheduler(cfg.scheduler, opt, 50)
    lrs = []
    for _ in range(50):  # the LR of each of the 50 steps; the engine steps the schedule after all but the last
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert max(lrs) == pytest.approx(0.5, rel=0.01)
    assert lrs[-1] <= 1e-4 * 0.5, lrs[-5:]


def test_the_group_option_decides_what_is_built_not_a_name_key_set_against_it():
    """`optim=adamw optim.name=adam` builds AdamW, as its fields are AdamW's; a cosine node renamed linear still
    follows cosine (its fields are cosine's: linear's would be missing)."""
    params = [torch.nn.Parameter(torch.zeros(2))]
    cfg = compose_config(["optim=adamw", "optim.name=adam", "scheduler=cosine", "scheduler.name=linear"])
    opt = build_optimizer(cfg.optim, params)
    assert type(opt) is torch.optim.AdamW
    sched = build_scheduler(cfg.scheduler, opt, 10)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    cosine = compose_config(["scheduler=cosine"]).scheduler
    assert lrs == pytest.approx([schedules.lr_at(cosine, lrs[0], k, 10) for k in range(10)])


def test_a_budget_without_a_schedule_only_stops_the_run_through_the_entry_point(tiny_data, tmp_path):
    run_main([f"data.path={tiny_data}", *BUDGET, "scheduler=none"], cwd=tmp_path)
    m = TrainMetrics.read(only_run_dir(tmp_path))
    assert m.actual["steps"] == m.plan["total_steps"] and m.epochs_run == 1
    assert m.history[-1].lr == 0.1  # constant


def test_a_budget_too_short_for_this_machine_is_one_line(tiny_data, tmp_path):
    proc = run_main([f"data.path={tiny_data}", *SMALL, "trainer.budget_minutes=0.001"], cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert line.startswith("error: trainer.budget_minutes=0.001: too short on this machine") and "allowed" in line


def test_a_resumed_budgeted_run_keeps_its_plan_and_the_time_it_spent(tiny_data, tmp_path):
    args = [f"data.path={tiny_data}", *BUDGET, "scheduler=linear", "trainer.budget_evals=4", "data.pipeline=fast"]
    proc = popen_main(args, tmp_path)
    run = wait_for_epoch(tmp_path, 1, proc)
    at_epoch_end = TrainMetrics.read(run).wall_time_s
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)  # in the middle of the next epoch: the checkpoint holds the time spent so far
    proc.communicate(timeout=120)
    before = TrainMetrics.read(run)
    assert proc.returncode == 143 and before.status == "interrupted" and before.plan is not None
    spent = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["state"]["wall_time_s"]
    assert spent > at_epoch_end  # else the resumed run would count the interrupted epoch's time as free budget
    run_main([f"ckpt_path={run}/checkpoints/last.ckpt", f"data.path={tiny_data}"], cwd=tmp_path)
    after = TrainMetrics.read(run)
    kept = ("budget_s", "started_at", "planned_at_s", "steps_per_epoch", "epochs", "calibrated_step_s", "initial_steps")
    assert {k: after.plan[k] for k in kept} == {k: before.plan[k] for k in kept}  # not planned again...
    assert after.plan["revisions"][: len(before.plan["revisions"])] == before.plan["revisions"]  # ...but continued
    assert after.status == "ok" and after.actual["steps"] == after.plan["total_steps"]
    assert "Keeping the budget plan of the checkpoint" in (run / "main.log").read_text()


def test_size_bounds_never_step_back_and_fit_steps_is_the_largest_count_that_fits():
    fractions = [0.5, 0.3, 0.2]
    assert resizing.size_bounds(100, fractions) == [50, 80]
    assert [resizing.size_index(k, 100, fractions) for k in (0, 49, 50, 79, 80, 99)] == [0, 0, 1, 1, 2, 2]
    assert resizing.size_index(10, 100, fractions, reached=1) == 1  # a re-plan moved the bound: no step back
    assert resizing.steps_by_size(0, 100, fractions) == [50, 30, 20]
    assert resizing.steps_by_size(60, 100, fractions) == [0, 20, 20]
    assert resizing.steps_by_size(40, 100, fractions, reached=1) == [0, 40, 20]
    seconds = [1.0, 2.0, 4.0]
    for left in (0.5, 10.0, 123.0, 1000.0):
        total = resizing.fit_steps(0, left, seconds, fractions)

        def cost(t):
            return sum(n * x for n, x in zip(resizing.steps_by_size(0, t, fractions), seconds, strict=True))

        assert cost(total) <= left < cost(total + 1)
    assert resizing.fit_steps(30, -5.0, seconds, fractions) == 30  # nothing fits: not one more step


def _plan(total=100, step_s=1.0):
    return budget.BudgetPlan(
        budget_s=200.0,
        started_at=0.0,
        planned_at_s=10.0,
        total_steps=total,
        steps_per_epoch=total,
        epochs=1,
        step_s={"32": step_s, "64": 4 * step_s},
        eval_s={"final": 20.0},
        reserve_s=4.0,
        calibrated_step_s={"32": step_s, "64": 4 * step_s},
        initial_steps=total,
    )


def test_a_replan_follows_the_measured_step_times_and_the_time_left():
    fractions = [0.8, 0.2]
    # calibrated: 80 steps x 1 s + 20 x 4 s = 160 s of training, 10 s start-up, 20 s validation, 4 s reserve
    plan = _plan(total=100)
    planner = replan.Replanner(plan, [32, 64], fractions)
    assert planner.every == 5
    for _ in range(20):
        planner.add_step(32, 2.0)  # the machine is twice as slow as calibrated
    total = planner.replan(20, 0, elapsed_s=10.0 + 40.0, reached=0)
    # 200 - 4 - 50 - 20 - 1 = 125 s for steps 20.. at 2 s (32 px) and 8 s (64 px, scaled like the 32 px ones)
    assert plan.step_s == {"32": 2.0, "64": 8.0}
    cost = sum(n * t for n, t in zip(resizing.steps_by_size(20, total, fractions), [2.0, 8.0], strict=True))
    assert total < 100 and cost <= 125 < cost + 8.0
    assert plan.total_steps == total and plan.revisions == [[20, total]] and plan.initial_steps == 100
    # on schedule again: the count stays
    planner2 = replan.Replanner(_plan(total=100), [32, 64], fractions)
    for _ in range(20):
        planner2.add_step(32, 1.0)
    assert planner2.replan(20, 0, elapsed_s=30.0, reached=0) >= 100


@pytest.mark.parametrize("name", ["linear", "cosine", "onecycle"])
def test_a_planned_schedule_follows_a_new_length_at_once_and_still_ends_at_zero(name):
    cfg = compose_config([f"scheduler={name}"])
    opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.5)
    sched = build_scheduler(cfg.scheduler, opt, 100)
    for _ in range(30):
        opt.step()
        sched.step()
    lr_before = opt.param_groups[0]["lr"]
    sched.set_total_steps(60)  # re-planned shorter: the LR of step 30 of 60
    assert opt.param_groups[0]["lr"] == pytest.approx(schedules.lr_at(cfg.scheduler, 0.5, 30, 60))
    assert opt.param_groups[0]["lr"] < lr_before
    for _ in range(29):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] <= 1e-4 * 0.5  # step 59, the last of 60
    sched.jump_to(10)  # a resume: the LR of its step, no replay
    assert opt.param_groups[0]["lr"] == pytest.approx(schedules.lr_at(cfg.scheduler, 0.5, 10, 60))


def cpu_settings(**changes) -> TrainSettings:
    """The engine settings of the in-process tests: fp32 eager on the CPU, 3 classes, no progress bar."""
    defaults = dict(
        seed=0,
        num_classes=3,
        device=torch.device("cpu"),
        amp_dtype=None,
        channels_last=False,
        compile=False,
        label_smoothing=0.0,
        log_every_n_steps=100,
        val_every_n_epochs=1,
        limit_train_batches=None,
        progress_bar=False,
    )
    return TrainSettings(**{**defaults, **changes})


class _Loader:
    """A stand-in train loader: batches of 64x64 images whose sizes the model's hook records."""

    batch_size = 4
    num_samples = 16

    def __len__(self):
        return 4

    def set_steps_per_epoch(self, steps):
        pass

    def epoch(self, epoch, skip=0):
        for _ in range(4 - skip):
            yield torch.randn(4, 3, 64, 64), torch.randint(0, 3, (4,))

    def __iter__(self):
        return self.epoch(0)


class FakeClock:
    """The planner's step-time source, injected: seconds pass only when the model computes (`train_s` a train
    step, `eval_s` an eval batch), so a plan's arithmetic is checked exactly and no budget is waited out."""

    def __init__(self, model, train_s: float, eval_s: float):
        self.now, self.train_s, self.eval_s = 0.0, train_s, eval_s
        model.register_forward_hook(lambda m, i, o: self.tick(m.training))

    def tick(self, training: bool) -> None:
        self.now += self.train_s if training else self.eval_s

    def __call__(self) -> float:
        return self.now


class _StreamLoader(_Loader):
    """A stand-in train loader for budgeted runs: an epoch is cut from an endless stream of batches, where the
    engine's plan ends it (as the real loaders do once set_steps_per_epoch is called)."""

    def epoch(self, epoch, skip=0):
        while True:
            yield torch.randn(4, 3, 64, 64), torch.randint(0, 3, (4,))


class _InterimLoader(_Loader):
    """A stand-in val subset: 2 batches of 4."""

    num_samples = 8

    def __len__(self):
        return 2

    def epoch(self, epoch, skip=0):
        for _ in range(2 - skip):
            yield torch.randn(4, 3, 64, 64), torch.randint(0, 3, (4,))


def stream_trainer(settings, model, opt, **extra) -> Trainer:
    """A Trainer on the stand-in stream of train batches and the stand-in val loader."""
    return Trainer(
        settings=settings, model=model, optimizer=opt, train_loader=_StreamLoader(), val_loader=_Loader(), **extra
    )


def budgeted_trainer(
    budget_minutes: float,
    evals: int,
    train_s: float,
    calibration_train_s: float | None = None,
    scheduler: str | None = None,
    interim: bool = False,
):
    """A Trainer on stand-in loaders whose clock is a FakeClock, planned as the train task plans it (make_plan,
    apply_plan, then the `scheduler` over the planned steps), with the calibration's steps at `calibration_train_s`
    (a busy machine at start-up) if given; `interim`: validations between epochs on 8 images (2 batches), the last
    one on 16. Returns (trainer, clock, plan, optimizer)."""
    from tinyimagenet_resnet.model import ResNet

    model = ResNet((1, 1, 1), (8, 8, 8), dropout=0.0, num_classes=3)
    clock = FakeClock(model, calibration_train_s or train_s, eval_s=0.25)
    settings = cpu_settings(epochs=1, started_at=time.time())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    interim_loader = _InterimLoader() if interim else None
    trainer = stream_trainer(settings, model, opt, interim_val_loader=interim_loader, clock=clock)
    plan = budget.make_plan(trainer, budget_minutes, evals)
    replan.apply_plan(trainer, plan)
    if scheduler is not None:
        trainer.scheduler = build_scheduler(
            compose_config([f"scheduler={scheduler}"]).scheduler, opt, trainer.total_steps
        )
    clock.train_s = train_s
    return trainer, clock, plan, opt


def used_and_limit(trainer, clock, start: float) -> tuple[float, float]:
    """(budget seconds the run used: its start-up, then its train steps and validations on the fake clock; what the
    budget gives them: all but the reserve). The fake clock charges nothing for an epoch's end, so the last one's
    allowance (budget.EPOCH_END_S) is left over."""
    plan = trainer.replanner.plan
    return plan.planned_at_s + (clock.now - start), plan.budget_s - plan.reserve_s


def test_a_budgeted_run_stops_by_itself_where_its_plan_says():
    trainer, clock, plan, _ = budgeted_trainer(1.0, evals=3, train_s=0.5, scheduler="linear", interim=True)
    start = clock.now
    state = trainer.fit()
    assert plan.budget_s == 60 and plan.total_steps >= 3
    assert state.global_step == plan.total_steps == state.history[-1].step  # planned and run steps agree
    assert state.epoch == plan.epochs == 3
    # epochs cut the stream every steps_per_epoch steps; the last ends with the run, where the re-plans moved it
    spe = plan.steps_per_epoch
    assert [r.step for r in state.history] == [spe, 2 * spe, plan.total_steps]
    assert plan.initial_steps == 3 * spe or plan.initial_steps > 2 * spe
    assert all(2 * spe < total for _, total in plan.revisions)
    if plan.revisions:
        assert plan.revisions[-1][1] == plan.total_steps
    assert state.history[-1].lr == 0.0  # linear decay ends at zero on the last step, re-planned or not
    assert [r.val_images for r in state.history] == [8, 8, 16]  # a subset between epochs, the whole split at the end
    assert set(plan.step_s) == {"64"} and {"final", "interim"} == set(plan.eval_s)
    used, limit = used_and_limit(trainer, clock, start)
    assert used <= limit < used + 0.5 + budget.EPOCH_END_S  # not one more step would have fitted


def test_a_plan_calibrated_on_a_busy_machine_grows_to_the_budget_as_steps_get_faster():
    trainer, clock, plan, _ = budgeted_trainer(budget_minutes=1.0, evals=2, train_s=0.5, calibration_train_s=2.0)
    start = clock.now
    state = trainer.fit()
    assert plan.calibrated_step_s == {"64": 2.0} and plan.step_s == {"64": 0.5}  # re-measured while it ran
    assert plan.total_steps > 3 * plan.initial_steps and state.global_step == plan.total_steps
    used, limit = used_and_limit(trainer, clock, start)
    assert used <= limit < used + 0.5 + budget.EPOCH_END_S  # the budget is used as if calibrated right


def test_progressive_resizing_changes_the_train_size_at_the_planned_steps_and_never_the_val_size():
    from tinyimagenet_resnet.model import ResNet

    model = ResNet((1, 1, 1), (8, 8, 8), dropout=0.0, num_classes=3)
    seen = []
    model.register_forward_hook(lambda m, i, o: seen.append(("train" if m.training else "eval", i[0].shape[-1])))
    settings = cpu_settings(epochs=2, started_at=0.0, train_sizes=(32, 48, 64), train_size_fractions=(0.25, 0.5, 0.25))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    trainer = Trainer(settings=settings, model=model, optimizer=opt, train_loader=_Loader(), val_loader=_Loader())
    trainer.fit()  # 2 epochs x 4 steps: 2 steps at 32, 4 at 48, 2 at 64
    assert [s for mode, s in seen if mode == "train"] == [32, 32, 48, 48, 48, 48, 64, 64]
    assert {s for mode, s in seen if mode == "eval"} == {64}
    assert [r.train_size for r in trainer.state.history] == [48, 64]


def test_precision_auto_is_bf16_only_where_the_cpu_has_native_bf16(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    assert runtime.resolve_precision("auto", cpu) is torch.bfloat16
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    assert runtime.resolve_precision("auto", cpu) is None
    assert runtime.resolve_precision("bf16", cpu) is torch.bfloat16


def test_experiment_cpu_composes_and_trains_two_steps(tiny_data, tmp_path):
    cfg = compose_config(["experiment=cpu"])
    assert list(cfg.trainer.train_sizes) == [16, 32, 64] and cfg.scheduler.name == "linear"
    assert OmegaConf.to_container(cfg.model)["widths"] == [64, 128, 256]  # the course architecture
    run_main(
        [f"data.path={tiny_data}", "experiment=cpu", *SMALL, "trainer.epochs=1", "trainer.limit_train_batches=2"],
        cwd=tmp_path,
    )
    m = TrainMetrics.read(only_run_dir(tmp_path))
    assert m.status == "ok" and m.history[0].step == 2 and m.precision in ("fp32", "bf16")


def test_time_to_accuracy_benchmark_writes_csv_png_and_raw_files(tiny_data, tmp_path):
    out = tmp_path / "results"
    recipe = "tiny:model.widths=[16,16,16] data.batch_size=8 data.num_workers=0 optim=sgd optim.lr=0.1 scheduler=linear"
    proc = subprocess.run(
        [
            "tinyimagenet-bench",
            "tta",
            "--data-path",
            str(tiny_data),
            "--budget",
            "0.3",
            "--recipe",
            recipe,
            "--evals",
            "2",
            "--interim-val-images",
            "8",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = (out / "tta.csv").read_text().splitlines()
    assert rows[0].startswith("recipe,budget_min,epoch,minutes") and len(rows) == 3
    assert rows[-1].endswith(",True") and (out / "tta.png").stat().st_size > 1000
    summary = json.loads((out / "tta.json").read_text())
    assert summary["budget_minutes"] == 0.3 and "capability" in summary["machine"]["cpu"]
    run = out / "tiny" / "run"
    assert (run / "metrics.json").is_file() and (run / "main.log").is_file() and not (run / "checkpoints").exists()
    again = subprocess.run(
        ["tinyimagenet-bench", "tta", "--plot-only", "--from", str(out), "--out", str(tmp_path / "p")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert again.returncode == 0 and len((tmp_path / "p" / "tta.csv").read_text().splitlines()) == 3


def test_the_time_to_accuracy_plot_draws_one_curve_per_recipe_and_budget():
    from tinyimagenet_resnet.reporting.figures import tta_curves

    def row(recipe, budget, minutes):
        return {"recipe": recipe, "budget_min": budget, "minutes": minutes, "val_top1": 0.1, "final": False}

    rows = [row("cpu", 60, 10), row("cpu", 60, 58), row("cpu", 20, 5), row("cpu", 20, 19), row("course", 20, 19)]
    curves = tta_curves(rows)
    assert list(curves) == ["cpu (60 min budget)", "cpu (20 min budget)", "course (20 min budget)"]
    assert [r["minutes"] for r in curves["cpu (20 min budget)"]] == [5, 19]


class SizedClock(FakeClock):
    """A FakeClock whose train step costs `train_s[size]` at each train resolution."""

    def tick_input(self, training: bool, size: int) -> None:
        self.now += self.train_s[size] if training else self.eval_s


class StepSizes:
    """The train size of every optimiser step of a run (a Trainer callback)."""

    def __init__(self):
        self.sizes = []

    def __getattr__(self, hook):  # the hooks this one does not use
        return lambda *args: None

    def on_step(self, trainer, step):
        self.sizes.append(trainer.s.train_sizes[trainer.state.size_index])


def phases(calibration_s: dict, steady_s: dict, retime: bool = True) -> list[int]:
    """Steps run at 16, 32 and 64 px by a 1-minute budgeted run (70/20/10%) calibrated at `calibration_s` per
    step and running at `steady_s` after."""
    from tinyimagenet_resnet.model import ResNet

    model = ResNet((1, 1, 1), (8, 8, 8), dropout=0.0, num_classes=3)
    clock = SizedClock.__new__(SizedClock)
    clock.now, clock.train_s, clock.eval_s = 0.0, calibration_s, 0.25
    model.register_forward_hook(lambda m, i, o: clock.tick_input(m.training, i[0].shape[-1]))
    settings = cpu_settings(
        epochs=1, started_at=time.time(), train_sizes=(16, 32, 64), train_size_fractions=(0.7, 0.2, 0.1)
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    seen = StepSizes()
    trainer = stream_trainer(settings, model, opt, callbacks=[seen], clock=clock)
    replan.apply_plan(trainer, budget.make_plan(trainer, 1.0, evals=1))
    if not retime:
        trainer.replanner.retime = None
    clock.train_s = steady_s
    trainer.fit()
    return [seen.sizes.count(size) for size in (16, 32, 64)]


def test_a_plan_calibrated_on_a_busy_machine_keeps_its_phase_split():
    """The calibration runs while the machine is busy, unevenly (32 px 10x slower than it will be, 16 px 2x): the
    sizes ahead are timed again at the first re-plan that sees the steps run faster, so the 16-px phase does not
    end at 70% of a plan sized for 32-px steps that never come. The phases then split as an unloaded run's do."""
    steady = {16: 0.1, 32: 0.3, 64: 1.0}
    busy = {16: 0.2, 32: 3.0, 64: 3.0}
    unloaded = phases(steady, steady)
    assert sum(unloaded) > 150 and abs(unloaded[0] / sum(unloaded) - 0.7) < 0.02, unloaded
    loaded = phases(busy, steady)
    for a, b in zip(loaded, unloaded, strict=True):  # the same split; the re-timing's own steps cost some budget
        assert abs(a / sum(loaded) - b / sum(unloaded)) < 0.02, (loaded, unloaded)
    assert 0.8 * sum(unloaded) < sum(loaded) <= sum(unloaded), (loaded, unloaded)
    scaled = phases(busy, steady, retime=False)  # the estimate scaled from 16 px alone: the first phase ends early
    assert scaled[0] / sum(scaled) < 0.65, scaled


def test_a_final_validation_over_a_third_of_the_budget_is_said_in_one_line(caplog):
    from tinyimagenet_resnet.model import ResNet

    model = ResNet((1, 1, 1), (8, 8, 8), dropout=0.0, num_classes=3)
    clock = FakeClock(model, 0.5, eval_s=6.0)  # 4 val batches: 24 s of a 60-s budget
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    settings = cpu_settings(epochs=1, started_at=time.time())
    trainer = stream_trainer(settings, model, opt, clock=clock)
    with caplog.at_level("WARNING", logger="tinyimagenet_resnet.training.budget"):
        budget.make_plan(trainer, 1.0, evals=1)
    [line] = [r.getMessage() for r in caplog.records if "final validation" in r.getMessage()]
    assert line == (
        "trainer.budget_minutes=1: the final validation on 16 val images is planned to take 24 s, 40% of the budget, "
        "leaving the rest for training; for more training, validate on a stratified subset (data.val_subset=2000) "
        "or give a longer budget"
    )
    caplog.clear()
    clock.eval_s = 4.0  # 16 s: under a third
    with caplog.at_level("WARNING", logger="tinyimagenet_resnet.training.budget"):
        budget.make_plan(trainer, 1.0, evals=1)
    assert not [r for r in caplog.records if "final validation" in r.getMessage()]
