"""`task=protocol`: the whole course protocol as one resumable command, on the tiny fixture in the real
parquet layout, through the real entry point in subprocesses (its LR range test on a real shard: test_real_data.py)."""

import json
import os
import re
import shutil
import signal
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import yaml

from tinyimagenet_resnet.reporting.document import g3, localize
from tinyimagenet_resnet.reporting.flags import within_noise
from tinyimagenet_resnet.reporting.text import TEXT
from tinyimagenet_resnet.sweeps.rows import collect

from conftest import copy_protocol, popen_main, protocol_args, run_main

# the tests that read the session's smoke protocol share one worker (the other would wait for it)
pytestmark = pytest.mark.xdist_group("smoke_protocol")

LINUX = sys.platform == "linux"
STEPS = ("inspect", "baselines", "overfit", "lr_find", "lr_wd", "blocks_dropout", "train", "evaluate", "report")


def events(root: Path) -> list[tuple[str, str]]:
    """(step, event) of each line of steps.log."""
    return [tuple(line.split()[2:4]) for line in (root / "steps.log").read_text().splitlines()]


@pytest.fixture
def clean(smoke_protocol) -> Path:
    """One uninterrupted smoke protocol (the session's, read only)."""
    return smoke_protocol


def md_text(md: str) -> str:
    """The prose of a report: no code blocks, inline code, tables, figure links or paths."""
    md = re.sub(r"```.*?```", "", md, flags=re.S)
    md = re.sub(r"`[^`]*`", "", md)
    env = localize(
        f"- **{TEXT['fr']['env']}:**", "fr"
    )  # package versions and the platform string (Linux-...-with-glibc)
    lines = [ln for ln in md.splitlines() if not ln.startswith(("|", "![", "<sub>", env))]
    return "\n".join(lines)


def texts(value) -> list[str]:
    """The strings of a text-table entry: a string, a list of them, or a mapping to them (series names)."""
    if isinstance(value, dict):
        return [t for v in value.values() for t in texts(v)]
    return [t for v in value for t in texts(v)] if isinstance(value, list) else [value]


def english_fragments() -> set[str]:
    """The fixed parts of every English sentence of the report's text table (what a French report must not hold)."""
    out = set()
    for value in TEXT["en"].values():
        for text in texts(value):
            for part in re.split(r"\{[^}]*\}|`[^`]*`", text):
                part = part.strip(" .,;:()*—-")
                if len(part) >= 14:
                    out.add(part)
    return out - {t for v in TEXT["fr"].values() for t in texts(v)}


@pytest.mark.slow
def test_the_smoke_protocol_runs_every_step_and_fills_every_section_in_both_languages(clean):
    state = json.loads((clean / "state.json").read_text())
    assert [s for s in STEPS if state["steps"][s]["status"] == "done"] == list(STEPS)
    assert events(clean) == [(s, e) for s in STEPS for e in ("start", "done")]
    # the console says where the protocol is: the whole estimate first, then each step with its own
    console = (clean.parents[1] / "console.txt").read_text()
    assert re.search(r"Protocol default: 9 steps to run, about [\w ]+ on this machine \(inspect \d", console)
    for k, step in enumerate(STEPS, 1):
        assert re.search(rf"protocol: step {k}/9 {step} \(est\. [\w ]+; protocol est\. [\w ]+ left\)", console)
    assert all(state["steps"][s]["seconds"] > 0 for s in STEPS)
    # every step but the report (built in the protocol's own process) was forked from the warm server (Linux)
    assert [s for s in STEPS[:-1] if state["steps"][s]["forked"]] == (list(STEPS[:-1]) if LINUX else [])

    # hand-offs: the grid is centred on lr_find's suggestion, the next steps take the best of the one before
    lf = json.loads((clean / "lr_find" / "lr_find.json").read_text())
    assert state["steps"]["lr_find"]["choice"]["lr"] == lf["suggested_lr"] is not None
    lr_wd = [json.loads(p.read_text()) for p in (clean / "lr_wd").glob("*/metrics.json")]
    assert len(lr_wd) == 4
    assert {m["hparams"]["lr"] for m in lr_wd} == {float(g3(lf["suggested_lr"] * f)) for f in (0.5, 2.0)}
    top = max(m["best"]["val/accuracy"] for m in lr_wd)
    chosen = state["steps"]["lr_wd"]["choice"]
    winners = {(m["hparams"]["lr"], m["hparams"]["weight_decay"]) for m in lr_wd if m["best"]["val/accuracy"] == top}
    assert (chosen["lr"], chosen["weight_decay"]) in winners
    bd_runs = [json.loads(p.read_text()) for p in (clean / "blocks_dropout").glob("*/metrics.json")]
    assert {(m["hparams"]["lr"], m["hparams"]["weight_decay"]) for m in bd_runs} == {
        (chosen["lr"], chosen["weight_decay"])
    }
    top = max(m["best"]["val/accuracy"] for m in bd_runs)
    bd = state["steps"]["blocks_dropout"]["choice"]
    winners = {(m["hparams"]["blocks"], m["hparams"]["dropout"]) for m in bd_runs if m["best"]["val/accuracy"] == top}
    assert ("".join(map(str, bd["blocks"])), bd["dropout"]) in winners
    train_cfg = yaml.safe_load((clean / "train" / ".hydra" / "config.yaml").read_text())
    assert (train_cfg["optim"]["lr"], train_cfg["optim"]["weight_decay"]) == (chosen["lr"], chosen["weight_decay"])
    assert (train_cfg["model"]["blocks"], train_cfg["model"]["dropout"]) == (bd["blocks"], bd["dropout"])

    train = json.loads((clean / "train" / "metrics.json").read_text())
    ev = json.loads((clean / "evaluate" / "metrics.json").read_text())
    assert ev["checkpoint"] == str(clean / "train" / "checkpoints" / "best.ckpt")
    for lang, folder in (("en", "report"), ("fr", "report-fr")):
        t = TEXT[lang]
        md = (clean / folder / "REPORT.md").read_text()
        L = partial(localize, lang=lang)  # noqa: N806 - the report's typography (French: 0,5 and 4 000)
        assert L(t["not_run"]) not in md, lang  # every section has real numbers
        assert re.findall(r"^## (.+)$", md, flags=re.M) == [L(t[f"s{i}"]) for i in range(12)]
        assert L(t["m4_found"].split("{")[0] + g3(lf["suggested_lr"])) in md
        assert L(t["m6_best"].split("{top1}")[0] + g3(train["best"]["val/accuracy"]) + "**") in md
        assert L(f"| test | {ev['test']['n']} | {g3(ev['test']['loss'])} | {g3(ev['test']['accuracy'])} |") in md
        assert L(t["protocol_choices"].split("{")[0]) in md and L(t["from_grid"].split("`")[0]) in md
        # the exact commands hold the Hydra overrides too (each step's own folder)
        assert f"hydra.sweep.dir={clean / 'lr_wd'}" in md and f"hydra.run.dir={clean / 'train'}" in md
        for figure in ("lr_find.png", "compare_lr.png", "compare_blocks_dropout.png", "confusion_matrix.png"):
            assert (clean / folder / "figures" / figure).is_file(), (lang, figure)
    # the report says what smoke numbers are not, and flags each condition exactly when it holds
    last = json.loads((clean / "overfit" / "metrics.json").read_text())["history"][-5:]
    overfit_loss = sum(r["train/loss"] for r in last) / len(last)  # the mean of the last 5 epochs
    cm = np.load(clean / "evaluate" / "confusion_matrix.npy")
    predicted = cm.sum(0)
    collapse = predicted.max() / predicted.sum() > 1 / 3 or (predicted > 0).sum() < max(2, (cm.sum(1) > 0).sum() // 10)
    rows = collect(clean / "lr_wd")
    for lang, folder in (("en", "report"), ("fr", "report-fr")):
        t = TEXT[lang]
        md = (clean / folder / "REPORT.md").read_text()
        assert md.index(localize(t["banner_title_smoke"], lang)) < md.index(localize(t["s1"], lang)), lang
        for key, holds in (
            ("flag_overfit", overfit_loss > 0.1),
            ("flag_collapse", collapse),
            ("flag_noise", within_noise(rows, clean / "lr_wd") is not None),
        ):
            assert (localize(t[key].split("{")[0], lang) in md) == holds, (lang, key, holds)
    fr = md_text((clean / "report-fr" / "REPORT.md").read_text())
    left = [f for f in english_fragments() if f in fr]
    assert not left, left
    words = re.findall(r"\b(the|of|and|with|from|not|every|only|run)\b", fr)  # (`none` is a scheduler's name)
    assert not words, words


@pytest.mark.slow
def test_sigkill_during_full_training_then_the_same_command_finishes_it_without_rerunning_any_step(
    clean, tiny_data, tmp_path
):
    args = protocol_args(tiny_data)
    root = copy_protocol(clean, tmp_path, steps_from="train")  # the six steps before training, as they finished
    before = events(root)
    proc = popen_main(args, tmp_path)
    metrics = root / "train" / "metrics.json"
    deadline = time.time() + 600
    while time.time() < deadline:  # until the full training has finished its first epoch
        try:
            if json.loads(metrics.read_text())["epochs_run"] >= 1:
                break
        except (OSError, ValueError, KeyError):
            pass
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.005)
    else:
        raise AssertionError("the protocol never reached its full training's first epoch")
    os.kill(proc.pid, signal.SIGKILL)  # the protocol process only: its training child must die with it
    proc.wait()
    time.sleep(1.0)
    killed_at = json.loads(metrics.read_text())
    assert killed_at["status"] == "running" and killed_at["epochs_run"] < 4
    time.sleep(2.0)
    assert json.loads(metrics.read_text()) == killed_at  # nothing trains on without the protocol
    killed = events(root)[len(before) :]
    assert killed == [*((s, "skip") for s in STEPS[:6]), ("train", "start")]
    before = events(root)

    run_main(args, cwd=tmp_path, timeout=900)
    after = events(root)[len(before) :]
    assert after[:6] == [(s, "skip") for s in STEPS[:6]]
    assert ("train", "resume") in after and ("train", "done") in after
    assert [e for e in after if e[1] == "start"] == [("train", "start"), ("evaluate", "start"), ("report", "start")]

    a = json.loads((clean / "train" / "metrics.json").read_text())
    b = json.loads(metrics.read_text())
    assert b["status"] == "ok" and b["epochs_run"] == a["epochs_run"] == 4
    assert a["best"] == b["best"]
    for ha, hb in zip(a["history"], b["history"], strict=True):
        timing = ("epoch_time_s", "wall_s")
        assert {k: v for k, v in ha.items() if k not in timing} == {k: v for k, v in hb.items() if k not in timing}
    ea = json.loads((clean / "evaluate" / "metrics.json").read_text())
    eb = json.loads((root / "evaluate" / "metrics.json").read_text())
    assert ea["test"] == eb["test"]


def test_an_interrupted_grid_step_continues_from_its_finished_jobs(clean, tiny_data, tmp_path):
    # the finished protocol, as if it had been stopped during its LR x WD grid after two of the four jobs
    copy = tmp_path / "protocol" / "default"
    shutil.copytree(clean, copy)
    state = json.loads((copy / "state.json").read_text().replace(str(clean), str(copy)))
    state["steps"]["lr_wd"] = {**state["steps"]["lr_wd"], "status": "interrupted"}
    (copy / "state.json").write_text(json.dumps(state, indent=2))
    grid = copy / "lr_wd"
    for job in ("2", "3"):
        shutil.rmtree(grid / job)
    kept = {j: sorted((grid / j).rglob("*")) for j in ("0", "1")}
    proc = run_main(protocol_args(tiny_data), cwd=tmp_path, timeout=900)
    log = proc.stdout + proc.stderr
    assert "job 0 (" in log and "job 1 (" in log and log.count("finished earlier, skipped") >= 2
    assert {j: sorted((grid / j).rglob("*")) for j in ("0", "1")} == kept
    assert all(json.loads((grid / j / "metrics.json").read_text())["status"] == "ok" for j in ("2", "3"))
    after = json.loads((copy / "state.json").read_text())
    assert after["steps"]["lr_wd"]["status"] == "done"
    assert after["steps"]["lr_wd"]["choice"] == state["steps"]["lr_wd"]["choice"]  # the same grid, the same winner
    assert ("lr_wd", "start") in events(copy) and ("blocks_dropout", "skip") in events(copy)


def test_a_protocol_resumed_with_other_settings_is_refused_in_one_line(tiny_data, tmp_path):
    root = tmp_path / "protocol" / "default"
    root.mkdir(parents=True)
    (root / "state.json").write_text(json.dumps({"scale": "cpu", "overrides": [], "steps": {}}))
    proc = run_main(protocol_args(tiny_data), cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    [line] = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert "protocol.scale=cpu" in line and "protocol.name" in line


def test_a_failing_step_is_marked_failed_and_named_in_one_line(tmp_path):
    # with each step a new interpreter (protocol.warm_start=false), as on macOS and Windows
    args = ["task=protocol", "protocol.scale=smoke", "protocol.warm_start=false", f"data.path={tmp_path / 'nowhere'}"]
    args += ["model.widths=[16,16,16]", "data.batch_size=16"]  # the start-up estimate times a step of this model
    proc = run_main(args, cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "error: protocol step inspect failed" in proc.stderr
    state = json.loads((tmp_path / "protocol" / "default" / "state.json").read_text())
    assert state["steps"]["inspect"]["status"] == "failed" and state["steps"]["inspect"]["forked"] is False
    assert events(tmp_path / "protocol" / "default") == [("inspect", "start"), ("inspect", "failed")]
