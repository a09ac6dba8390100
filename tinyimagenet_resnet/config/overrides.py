"""Command-line overrides as Hydra writes them (`key=value`, `+key=value`, `++key=value`, `~key`, `group=option`):
the one parser every module uses to ask which keys a command set."""

from __future__ import annotations

from collections.abc import Iterable

# Overrides a sweeper adds to each job for itself (its folder, its Optuna trial), not choices of the user.
SWEEPER_KEYS = ("hydra.", "optuna.trial_number")
# Keys that say where and how to run, not what was trained: a command that continues or evaluates a checkpoint, or
# resumes a study or a grid, may change them; left out, they keep the checkpoint's values (so a printed resume
# command works as printed).
RUNTIME_KEYS = (
    "data.path",
    "data.cache_dir",
    "data.num_workers",
    "trainer.device",
    "trainer.progress_bar",
    "trainer.progress_every_s",
)


def override_key(override: str) -> str:
    """`++trainer.epochs=30` -> `trainer.epochs`; `~model.dropout` -> `model.dropout`; `model/blocks=b333` ->
    `model/blocks`; `db@backup=mysql` -> `db`."""
    key = override.split("=", 1)[0].lstrip("+~")
    return key.split("@", 1)[0]


def override_value(override: str) -> str | None:
    return override.split("=", 1)[1] if "=" in override else None


def overridden_keys(overrides: Iterable[str]) -> set[str]:
    return {override_key(o) for o in overrides}


def overrides_key(overrides: Iterable[str], *prefixes: str) -> bool:
    """True when some override sets one of `prefixes` or a key below it (`model` matches `model.dropout` and
    `model/blocks`)."""
    for key in overridden_keys(overrides):
        for p in prefixes:
            if key == p or key.startswith(p + ".") or key.startswith(p + "/"):
                return True
    return False


def without(overrides: Iterable[str], *keys: str) -> list[str]:
    """The overrides minus those that set one of `keys`."""
    return [o for o in overrides if override_key(o) not in keys]


def seed_sweep(overrides: list[str], seed: int, seeds: int) -> list[str]:
    """`seeds=3`: the overrides with `seed=<seed>,<seed+1>,<seed+2>` (replacing a single `seed=`), so that every
    point of the grid runs once per seed; a seed sweep the user wrote (`seed=1,5,9`) is kept as it is."""
    if seeds <= 1 or any(override_key(o) == "seed" and "," in (override_value(o) or "") for o in overrides):
        return list(overrides)
    kept = [o for o in overrides if override_key(o) != "seed"]
    return [*kept, "seed=" + ",".join(str(seed + i) for i in range(seeds))]
