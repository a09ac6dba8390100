"""The protocol's steps and what each runs at each scale: the scale's Hydra overrides per step (`SCALES`), and the LR x
WD grid around lr_find's suggestion. Data only, and the one function that formats the grid's values."""

from __future__ import annotations

from ..config.kinds import GRIDS

# The settings of each scale, step by step (Hydra overrides; the user's own come after them and win).
# smoke: minutes on a 2-core CPU, narrow widths, small subsets, 1-3 epochs: every section gets real numbers.
# cpu: full widths on subsets, a few hours on a CPU with native bf16. full: the course on the full data (a GPU).
QUIET = ["trainer.progress_bar=false"]
SCALES: dict[str, dict[str, list[str]]] = {
    "smoke": {
        "all": ["model.widths=[16,32,64]", "data.val_subset=500", *QUIET],
        "inspect": ["inspect.stats_images=1000"],
        "baselines": [],
        # a sample of 32 (one batch) at these widths needs a higher LR and more epochs than the course's 64 images
        # at 1e-3 (which ended at a loss of 1.1 after 100 epochs) to get near zero: 0.02 over the last 5 epochs,
        # in 85 s (BENCHMARKS.md, "Smoke protocol")
        "overfit": [
            "data.train_subset=32",
            "data.batch_size=32",
            "optim.lr=1e-2",
            "trainer.epochs=150",
            "trainer.val_every_n_epochs=75",
            "data.val_subset=200",
        ],
        # 200 iterations over 1e-4 -> 0.3 at EMA 0.95: a suggestion on the 20k subset and on one real shard at
        # these widths (0.0025 and 0.0036 measured; 150 iterations at 0.9 over 1e-5 -> 1 found none on the 20k
        # subset: BENCHMARKS.md, "Smoke protocol")
        "lr_find": [
            "data.train_subset=12800",  # 200 iterations of 64: one pass, each image once
            "data.batch_size=64",
            "lr_find.num_iters=200",
            "lr_find.min_lr=1e-4",
            "lr_find.max_lr=0.3",
        ],
        "lr_wd": ["data.train_subset=1600", "data.batch_size=64", "trainer.epochs=1"],
        "blocks_dropout": [
            "data.train_subset=1600",
            "data.batch_size=64",
            "trainer.epochs=1",
            "model/blocks=b111,b222",
            "model/dropout=p01,p03",
        ],
        "train": ["data.train_subset=3000", "data.batch_size=64", "trainer.epochs=3"],
        "evaluate": ["data.test_subset=2000"],
    },
    "cpu": {
        "all": QUIET,
        "inspect": [],
        "baselines": [],
        "overfit": [],
        "lr_find": ["data.train_subset=20000", "data.batch_size=64"],
        "lr_wd": ["data.train_subset=5000", "data.val_subset=2000", "trainer.epochs=2"],
        "blocks_dropout": ["data.train_subset=5000", "data.val_subset=2000", "trainer.epochs=3"],
        "train": ["trainer.budget_minutes=60"],
        "evaluate": [],
    },
    "full": {
        "all": QUIET,
        "inspect": [],
        "baselines": [],
        "overfit": [],
        "lr_find": [],
        "lr_wd": [],
        "blocks_dropout": [],
        "train": [],
        "evaluate": [],
    },
}
# LR grid around lr_find's suggestion (factors), and the weight decays beside it, per scale
LR_FACTORS = {"smoke": (0.5, 2.0), "cpu": (1 / 3, 1.0, 3.0), "full": (0.1, 1 / 3, 1.0, 3.0, 10.0)}
WEIGHT_DECAYS = {"smoke": (0.0, 1e-4), "cpu": (0.0, 1e-4), "full": (0.0, 1e-5, 1e-4, 1e-3)}
SWEEPS = GRIDS
STEPS = ("inspect", "baselines", "overfit", "lr_find", *SWEEPS, "train", "evaluate", "report")


def sig3(x: float) -> str:
    """A value for an override with 3 significant figures (1e-3 -> 0.001, 0.000316 -> 0.000316)."""
    return f"{float(f'{x:.3g}'):g}"


def lr_wd_handoff(scale: str, lr: float | None) -> list[str]:
    """The LR x WD grid's values at `scale`: LRs around lr_find's suggestion (the sweep's own without one)."""
    handoff = []
    if lr is not None:
        handoff.append("optim.lr=" + ",".join(sig3(lr * f) for f in LR_FACTORS[scale]))
    return [*handoff, "optim.weight_decay=" + ",".join(f"{w:g}" for w in WEIGHT_DECAYS[scale])]
