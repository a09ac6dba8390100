"""The report in its language and its warnings: French typography of the prose (code, paths and config values
untouched), every figure's words in the report's language (read from the sidecar each figure writes), and the
flags a report raises on numbers that are not what they seem (an overfit that did not, grid winners within the
noise, predictions collapsed onto few classes)."""

import json
import re
from types import SimpleNamespace

import numpy as np

from tinyimagenet_resnet.artifacts.records import SplitSummary
from tinyimagenet_resnet.artifacts.runs import Run
from tinyimagenet_resnet.reporting import figures
from tinyimagenet_resnet.reporting.document import NBSP, NNBSP, localize
from tinyimagenet_resnet.reporting.flags import collapsed, within_noise


def test_french_typography_leaves_code_paths_and_config_values_alone():
    line = "Train 187,608 images; lr 0.00724, top-1 12% (voir `optim.lr=0.001`, lr=0.001_wd, torch 2.14.1): fin"
    fr = localize(line, "fr")
    assert f"187{NNBSP}608" in fr and "0,00724" in fr and f"12{NNBSP}%" in fr
    assert "`optim.lr=0.001`" in fr and "lr=0.001_wd" in fr and "torch 2.14.1" in fr
    assert fr.endswith(f"2.14.1){NBSP}: fin")
    assert localize(line, "en") == line
    assert localize("    x = 0.5", "fr") == "    x = 0.5"  # an indented code line
    # a sentence's final period, negative numbers, thousands with decimals; lists, ranges and exponents untouched
    assert (
        localize("accuracy 0.98. Loss -0.5, 1,234.5 images", "fr") == f"accuracy 0,98. Loss -0,5, 1{NNBSP}234,5 images"
    )
    same = "model.widths=[64,128,256] [64,128,256] 1e-3 3.00e-03 top-1 2026-12-03 12:30 x_0.5"
    assert localize(same, "fr") == same
    assert (
        localize("![a](figures/x_0.5.png) <sub>model.py:55</sub>", "fr")
        == "![a](figures/x_0.5.png) <sub>model.py:55</sub>"
    )


def english_words() -> set[str]:
    """Every English word of the figures' fixed texts that French does not share."""
    words = lambda lang: {  # noqa: E731
        w
        for v in figures.WORDS[lang].values()
        for text in (v.values() if isinstance(v, dict) else [v])
        for w in re.findall(r"[a-zA-Z]{4,}", re.sub(r"\{[^}]*\}", "", text))
    }
    return words("en") - words("fr")


def test_every_figure_of_a_french_report_is_in_french(tmp_path):
    rng = np.random.default_rng(0)
    cm = rng.integers(0, 5, (200, 200))
    drawn = [
        figures.class_distribution({"train": np.full(200, 450), "val": np.full(200, 50)}, lang="fr"),
        figures.lr_curve(
            np.logspace(-4, 0, 50), np.linspace(5.3, 4, 50), np.linspace(5.3, 4.1, 50), 3e-3, (1e-3, 1e-2), lang="fr"
        ),
        figures.confusion_matrix(cm, [f"classe {i}" for i in range(200)], "Matrice de confusion", lang="fr"),
        figures.samples(rng.random((8, 64, 64, 3)), list(range(8)), "fast", lang="fr"),
    ]
    english = english_words()
    assert {"smoothed", "predicted", "learning"} <= english
    for i, fig in enumerate(drawn):
        path = figures.save(fig, tmp_path / f"f{i}.png")
        words = json.loads(figures.words_path(path).read_text(encoding="utf-8"))
        text = " ".join(t for ts in words.values() for t in ts)
        assert text.strip(), i
        left = set(re.findall(r"[a-zA-Z]{4,}", text)) & english
        assert not left, (i, left, text)
    assert "suggéré 3,00e-03" in (tmp_path / "f1.png.json").read_text(encoding="utf-8")
    assert not (tmp_path / "f1.json").exists()  # a run's own records (lr_find.json beside lr_find.png) stay its own


def job(folder, val: int):
    SplitSummary("x", 0, 0.1, {"train": 1000, "val": val}, {"train": "a", "val": "b"}, "c").write(folder)
    return folder.name


def test_grid_winners_within_the_binomial_noise_are_flagged(tmp_path):
    a, b = tmp_path / "0", tmp_path / "1"
    a.mkdir(), b.mkdir()
    rows = lambda top, second: [  # noqa: E731
        SimpleNamespace(status="ok", best_val_top1=top, job=job(a, 500)),
        SimpleNamespace(status="ok", best_val_top1=second, job=job(b, 500)),
    ]
    noise = within_noise(rows(0.30, 0.298), tmp_path)  # one image apart in 500: SE of the difference ~2.9 points
    assert noise is not None and noise["n"] == 500 and noise["first"] == "0" and noise["second"] == "1"
    assert within_noise(rows(0.30, 0.20), tmp_path) is None  # ten points apart
    assert within_noise(rows(0.30, 0.298)[:1], tmp_path) is None  # nothing to compare


def test_predictions_collapsed_onto_few_classes_are_flagged(tmp_path):
    for name, cm in (("collapsed", np.zeros((200, 200))), ("spread", np.eye(200) * 10 + 1)):
        if name == "collapsed":
            cm[:, 7] = 10
        (tmp_path / name).mkdir()
        np.save(tmp_path / name / "confusion_matrix.npy", cm.astype(np.int64))
    flag = collapsed(Run(tmp_path / "collapsed"))
    assert flag == {"used": 1, "present": 200, "top": "100%", "n": 2000}
    assert collapsed(Run(tmp_path / "spread")) is None
