"""`task=baselines`: trivial classifiers on val and test (majority class, uniform random, class prior)."""

from __future__ import annotations

import logging

import numpy as np

from ..artifacts.records import BaselinesRecord
from ..data.classes import class_name
from .common import run_context, setup_data

log = logging.getLogger(__name__)


def baseline_scores(train_labels: np.ndarray, eval_labels: np.ndarray, num_classes: int, seed: int) -> dict:
    prior = np.bincount(train_labels, minlength=num_classes) / len(train_labels)
    share = np.bincount(eval_labels, minlength=num_classes) / len(eval_labels)
    majority = int(np.argmax(prior))
    rng = np.random.default_rng(seed)
    return {
        "majority_class": {
            "class": majority,
            "name": class_name(majority),
            "accuracy": float(np.mean(eval_labels == majority)),
        },
        "uniform_random": {
            "expected_accuracy": 1.0 / num_classes,
            "sampled_accuracy": float(np.mean(rng.integers(0, num_classes, len(eval_labels)) == eval_labels)),
        },
        "class_prior_random": {"expected_accuracy": float(np.sum(prior * share))},
        "n": int(len(eval_labels)),
    }


def run(cfg) -> float:
    ctx = run_context(cfg)
    dm = setup_data(cfg, ctx.run_dir)
    train = dm.splits["train"].labels
    results = {
        name: baseline_scores(train, dm.splits[name].labels, dm.num_classes, int(cfg.seed)) for name in ("val", "test")
    }
    BaselinesRecord(val=results["val"], test=results["test"], num_classes=dm.num_classes).write(ctx.run_dir)
    for name in ("val", "test"):
        r = results[name]
        log.info(
            "%s (%d images): majority class (%s) %.2f%% | uniform random %.2f%% expected, %.2f%% sampled | "
            "class-prior random %.2f%%",
            name,
            r["n"],
            r["majority_class"]["name"],
            100 * r["majority_class"]["accuracy"],
            100 * r["uniform_random"]["expected_accuracy"],
            100 * r["uniform_random"]["sampled_accuracy"],
            100 * r["class_prior_random"]["expected_accuracy"],
        )
    return results["val"]["majority_class"]["accuracy"]
