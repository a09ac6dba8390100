"""The Hydra callback of every multirun: repeats each grid point with `seeds` seeds, opens the MLflow parent run,
declares TensorBoard's HParams columns, and writes the summary tables at the end."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf, read_write

from ..artifacts.names import HP_METRICS
from ..artifacts.trackers import start_mlflow_parent
from ..config.overrides import override_key, override_value, seed_sweep
from ..errors import UserError
from .tables import write_summary

# main.log names the logger on every line: these lines keep the name they have always had
log = logging.getLogger("tinyimagenet_resnet.sweeps.summary")


class SummaryCallback(Callback):
    """Repeats every grid point with `seeds` seeds, and writes summary.md / summary.csv into the sweep directory at
    the end of every multirun."""

    def on_multirun_start(self, config, **kwargs) -> None:
        seeds = OmegaConf.select(config, "seeds", default=1) or 1
        if seeds > 1:
            add_seed_sweep(config, int(seeds))
        mlflow_cfg = OmegaConf.select(config, "logger.mlflow", default=None)
        if mlflow_cfg is not None:  # one parent run per sweep, its jobs its children
            sweep_dir = Path(config.hydra.sweep.dir)
            try:
                start_mlflow_parent(sweep_dir, mlflow_cfg.tracking_uri, mlflow_cfg.experiment, str(sweep_dir))
            except UserError as exc:  # mlflow not installed: one line, before any job
                print(f"error: {exc}", file=sys.stderr)
                sys.exit(exc.exit_code)
        if "ResumableOptunaSweeper" in str(config.hydra.sweeper.get("_target_", "")) or not uses_tensorboard(config):
            return  # that sweeper declares its search space's columns itself, in its study's folder
        # lazy: TensorBoard's protobufs cost 0.5 s of start-up; Hydra builds this callback for every run
        from ..artifacts.tb_hparams import write_experiment
        from ..config.hparams import grid_hparams  # lazy: it imports the TensorBoard protobufs too

        params = config.hydra.sweeper.get("params") or {}
        overrides = [f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task)
        write_experiment(Path(config.hydra.sweep.dir), grid_hparams(overrides, config), list(HP_METRICS), "grid sweep")

    def on_multirun_end(self, config, **kwargs) -> None:
        if "ResumableOptunaSweeper" in str(config.hydra.sweeper.get("_target_", "")):
            return  # that sweeper writes the summary of its study's folder itself, also when it stops early
        sweep_dir = Path(config.hydra.sweep.dir)
        if sweep_dir.is_dir():
            rows = write_summary(sweep_dir, config.hydra.get("sweeper"), config)
            log.info("Sweep summary (%d runs): %s", len(rows), sweep_dir / "summary.md")


def uses_tensorboard(config) -> bool:
    """`logger` includes TensorBoard (runs of version 0.1.0 have no `logger` node: TensorBoard only)."""
    logger = OmegaConf.select(config, "logger", default=None)
    return logger is None or logger.get("tensorboard") is not None


def add_seed_sweep(config, seeds: int) -> None:
    """`seeds=3`: the sweep's command-line overrides get `seed=<seed>,<seed+1>,<seed+2>` (replacing a single
    `seed=`), so the sweeper runs every point of its grid once per seed. Called before Hydra creates the sweeper,
    which reads these overrides. A seed sweep the user wrote (`seed=1,5,9`) is kept as it is."""
    task = config.hydra.overrides.task
    if any(override_key(o) == "seed" and "," in (override_value(o) or "") for o in task):
        return
    base = int(config.seed)
    with read_write(task):
        swept = seed_sweep(list(task), base, seeds)
        task.clear()
        task.extend(swept)
    log.info("seeds=%d: every configuration runs with seed %s", seeds, ", ".join(str(base + i) for i in range(seeds)))
