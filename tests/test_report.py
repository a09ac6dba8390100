"""The course report, built from the run directories of the whole workflow on the tiny fixture (the session's smoke
protocol, read only), and the plot and report commands."""

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from PIL import Image

from tinyimagenet_resnet.reporting.document import g3, localize
from tinyimagenet_resnet.reporting.text import TEXT

from conftest import run_main

# the tests that read the session's smoke protocol share one worker (the other would wait for it)
pytestmark = pytest.mark.xdist_group("smoke_protocol")
# the commands run as `python -m ...` (the console scripts tinyimagenet-report and -plot as a user types them)
REPORT, OVERLAY = "tinyimagenet_resnet.reporting.report", "tinyimagenet_resnet.reporting.overlay"


@pytest.fixture
def workflow(smoke_protocol) -> Path:
    """The course workflow's runs on the tiny fixture: the session's smoke protocol (inspect, baselines, overfit,
    lr_find, the LR x WD grid, a training and its evaluation; read only)."""
    return smoke_protocol


# the report is built from every run of the workflow but the blocks x dropout grid, which is left "not run"
REPORTED = ("inspect", "baselines", "overfit", "lr_find", "train", "evaluate")


def report_args(workflow: Path) -> list[str]:
    return [*(f"--run={kind}={workflow / kind}" for kind in REPORTED), f"--sweep={workflow / 'lr_wd'}"]


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_report_covers_the_outline_with_traceable_numbers(workflow, lang, tmp_path):
    proc = subprocess.run(
        ["tinyimagenet-report", "--lang", lang, "--out", f"report_{lang}", *report_args(workflow)],
        cwd=tmp_path,  # nothing to discover there: the report holds the runs named on its command line only
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / f"report_{lang}" / "REPORT.md").read_text()
    t = TEXT[lang]

    def L(text):  # noqa: N802 - the report's typography in its language (French: 0,5 and 4 000)
        return localize(text, lang)

    headings = re.findall(r"^## (.+)$", md, flags=re.M)
    assert headings == [t[f"s{i}"] for i in range(12)]
    for qid in (
        "D1",
        "D2",
        "D3",
        "D4",
        "D5",
        "D6",
        "D7",
        "D8",
        "D9",
        "D10",
        "D11",
        "M0",
        "M1",
        "M2",
        "M3",
        "M4",
        "M5",
        "M6",
        "M7",
        "M9",
    ):
        assert L(f"### {qid}. {t[qid]}") in md, qid
    assert L(t["not_run"]) in md  # only the blocks x dropout sweep was not run
    assert md.count(L(t["not_run"])) == 2 and "sweep=blocks_dropout" in md

    figures = re.findall(r"!\[[^\]]*\]\((figures/[^)]+)\)", md)
    assert {Path(f).name for f in figures} >= {
        "class_distribution.png",
        "augmented_samples.png",
        "lr_find.png",
        "overfit_train_loss.png",
        "train_val_loss.png",
        "train_val_accuracy.png",
        "compare_lr.png",
        "compare_wd.png",
        "confusion_matrix.png",
    }
    for f in figures:
        with Image.open(tmp_path / f"report_{lang}" / f) as img:
            img.verify()

    # every number below is read from the runs' own JSON files
    ins = json.loads((workflow / "inspect" / "inspect.json").read_text())
    assert L(f"{ins['initial_loss']['loss']:.4f}") in md and L(f"{ins['grayscale_share']:.2%}") in md
    base = json.loads((workflow / "baselines" / "baselines.json").read_text())
    assert L(f"| val | {g3(base['val']['majority_class']['accuracy'])} | {g3(0.005)} |") in md
    lrf = json.loads((workflow / "lr_find" / "lr_find.json").read_text())
    assert L(f"**{lrf['suggested_lr']:.3g}**") in md
    ev = json.loads((workflow / "evaluate" / "metrics.json").read_text())
    assert L(f"| test | {ev['test']['n']} | {g3(ev['test']['loss'])} | {g3(ev['test']['accuracy'])} |") in md
    train_dir = Path(ev["checkpoint"]).parents[1]
    tm = json.loads((train_dir / "metrics.json").read_text())
    assert L(t["m6_best"].split("{top1}")[0] + g3(tm["best"]["val/accuracy"]) + "**") in md
    dropout = yaml.safe_load((train_dir / ".hydra" / "config.yaml").read_text())["model"]["dropout"]
    assert L(t["m1"].split("{total")[0]) in md and f"ResidualBlock(Conv3x3-BN-relu-Dropout2d({dropout})" in md
    swept = yaml.safe_load((workflow / "lr_wd" / "multirun.yaml").read_text())["hydra"]["overrides"]["task"]
    [lrs] = [o for o in swept if o.startswith("optim.lr=")]
    assert "," in lrs and "python -m tinyimagenet_resnet.main -m" in md and lrs in md
    assert md.count("✏️") >= 10  # judgement questions are prompts, not invented prose


def test_report_states_when_the_lr_finder_found_no_descent_and_when_predictions_collapsed(workflow, tmp_path):
    import shutil

    import numpy as np

    lrf, ev = tmp_path / "lr_find_run", tmp_path / "evaluate_run"
    shutil.copytree(workflow / "lr_find", lrf)
    data = json.loads((lrf / "lr_find.json").read_text())
    data.update(suggested_lr=None, stable_window=None)
    (lrf / "lr_find.json").write_text(json.dumps(data))
    # every test image predicted as class 0 (the fixture's own model spreads its predictions)
    shutil.copytree(workflow / "evaluate", ev)
    cm = np.load(ev / "confusion_matrix.npy")
    collapsed = np.zeros_like(cm)
    collapsed[:, 0] = cm.sum(1)
    np.save(ev / "confusion_matrix.npy", collapsed)
    args = ["--run", f"lr_find={lrf}", "--run", f"evaluate={ev}", "--out", tmp_path / "r"]
    proc = run_main(args, cwd=tmp_path, check=False, module=REPORT)
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "r" / "REPORT.md").read_text()
    assert "no clear descent" in md
    flag = TEXT["en"]["flag_collapse"].format(top="100%", n=int(cm.sum()), used=1, present=int((cm.sum(1) > 0).sum()))
    assert f"> ⚠️ {flag}" in md


def test_report_with_nothing_run_yet_marks_every_section(tmp_path):
    proc = run_main([], cwd=tmp_path, check=False, module=REPORT)
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "report" / "REPORT.md").read_text()
    assert len(re.findall(r"^## ", md, flags=re.M)) == 12 and md.count("not run yet") >= 8
    bad = run_main(["--lang", "de"], cwd=tmp_path, check=False, module=REPORT)
    assert bad.returncode == 2 and bad.stderr.startswith("error: argument --lang: invalid choice: 'de'")
    assert len(bad.stderr.strip().splitlines()) == 1
    bad = subprocess.run(
        ["tinyimagenet-report", "--run", "train=/no/such/run"], cwd=tmp_path, capture_output=True, text=True
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: --run train='/no/such/run': not a run directory")


def test_plot_overlays_a_metric_of_a_sweep(workflow, tmp_path):
    sweep = workflow / "lr_wd"
    out = tmp_path / "val_loss.png"
    proc = subprocess.run(
        ["tinyimagenet-plot", str(sweep), "--metric", "val/loss", "--out", str(out)], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "4 runs" in proc.stdout
    with Image.open(out) as img:
        assert img.format == "PNG"
    bad = run_main([sweep, "--metric", "nope"], cwd=tmp_path, check=False, module=OVERLAY)
    assert bad.returncode == 2 and "--metric='nope'" in bad.stderr


def test_the_architecture_text_follows_the_config():
    from tinyimagenet_resnet.reporting.architecture import architecture

    base = {"name": "resnet", "blocks": [1, 1, 1], "widths": [8, 16, 32], "dropout": 0.2, "activation": "gelu"}
    rows, _ = architecture({**base, "batch_norm": False}, 200)
    text = " ".join(r[1] for r in rows)
    assert "BN" not in text and "gelu" in text and "Dropout2d(0.2)" in text
    rows, _ = architecture({**base, "batch_norm": True}, 200)
    assert "Conv3x3 + BN + gelu" in rows[0][1] and "Conv3x3-BN-gelu-Dropout2d(0.2)-Conv3x3-BN" in rows[1][1]
    rows, _ = architecture({k: v for k, v in base.items() if k != "activation"}, 200)  # a 0.1.0 run's config
    assert "relu" in rows[0][1] and "BN" in rows[0][1]


def test_epoch_axes_have_whole_numbers_only():
    from tinyimagenet_resnet.reporting.figures import curves

    fig = curves({"val/accuracy": ([1, 2, 3], [0.1, 0.2, 0.3])}, "accuracy", "t")
    ticks = [t for t in fig.axes[0].get_xticks() if 1 <= t <= 3]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_section_zero_names_the_author_and_repository_or_asks_for_them(tmp_path):
    from tinyimagenet_resnet.reporting.context import ReportOptions
    from tinyimagenet_resnet.reporting.report import build

    for lang in ("en", "fr"):
        asked = build(ReportOptions(lang=lang, out=str(tmp_path / f"a{lang}"), discover=False)).read_text()
        t = TEXT[lang]
        assert localize(f"**{t['author']}:** ✏️", lang) in asked and localize(f"**{t['repo']}:** ✏️", lang) in asked
    given = build(ReportOptions(out=str(tmp_path / "b"), author="A. Student", repo="https://x.org/r", discover=False))
    md = given.read_text()
    assert "**Author:** A. Student" in md and "**Repository:** https://x.org/r" in md
