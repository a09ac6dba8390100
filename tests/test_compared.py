"""The compared hyper-parameters (compared.py) read the same everywhere: a run's name, its HParams columns and
metrics.json `hparams`, a grid's declared columns and the sweep summary's row of the run agree, for every row of the
table, on a config composed from conf/ as the entry point composes it."""

import yaml
from omegaconf import OmegaConf

from tinyimagenet_resnet.artifacts.summary_row import SummaryRow
from tinyimagenet_resnet.compared import BY_COLUMN, COMPARED, GRID_COLUMNS, NAME_ORDER
from tinyimagenet_resnet.config.hparams import grid_hparams, hparams_of, run_hparams
from tinyimagenet_resnet.config.loader import compose_config
from tinyimagenet_resnet.config.naming import run_name
from tinyimagenet_resnet.sweeps.rows import job_row

# One override for every compared hyper-parameter (the group form where there is one), none at its default.
OVERRIDES = [
    "optim=sgd",
    "optim.lr=0.02",
    "optim.weight_decay=0.0005",
    "model/blocks=b333",
    "model/dropout=p03",
    "scheduler=linear",
    "data.batch_size=48",
    "trainer.epochs=7",
    "model.activation=gelu",
    "model.batch_norm=false",
    "seed=11",
]


def test_every_compared_hyper_parameter_is_overridden_here_and_no_key_is_claimed_twice():
    keys = [key for c in COMPARED for key in c.keys]
    assert len(keys) == len(set(keys))
    assert {o.split("=")[0] for o in OVERRIDES} <= set(keys)
    overridden = {o.split("=")[0] for o in OVERRIDES}
    assert all(overridden & set(c.keys) for c in COMPARED), "a row of the table has no override in this test"


def test_run_name_hparams_and_metrics_json_agree_on_every_compared_value():
    cfg = compose_config(OVERRIDES)
    values = hparams_of(cfg)
    assert list(values) == [c.column for c in COMPARED]
    assert values == {
        "lr": 0.02,
        "weight_decay": 0.0005,
        "blocks": "333",
        "dropout": 0.3,
        "optim": "sgd",
        "scheduler": "linear",
        "batch_size": 48,
        "epochs": 7,
        "activation": "gelu",
        "batch_norm": False,
        "seed": 11,
    }
    # the run name: the overridden ones among NAME_ORDER, each in its short name and format, from the same values
    expected = "_".join(f"{BY_COLUMN[c].short}={BY_COLUMN[c].label(values[c])}" for c in NAME_ORDER)
    assert (
        run_name(cfg, OVERRIDES) == expected == "optim=sgd_lr=0.02_wd=0.0005_blocks=333_dropout=0.3_act=gelu_bn=false"
    )
    # HParams: the compared columns once each, no override key repeated as a column of its own
    assert run_hparams(cfg, OVERRIDES) == values


def test_a_grid_declares_the_columns_its_jobs_report(tmp_path):
    cfg = compose_config([])
    columns = grid_hparams(["optim.lr=0.01,0.02", "model/dropout=p00,p03", "model/blocks=b222,b333"], cfg)
    by_name = {h.name: h for h in columns}
    assert [h.name for h in columns[:3]] == ["lr", "dropout", "blocks"]
    assert by_name["lr"].values == [0.01, 0.02]
    assert by_name["dropout"].values == [0.0, 0.3]
    assert by_name["blocks"].values == ["222", "333"]
    assert set(hparams_of(cfg)) <= set(by_name)


def test_the_summary_row_of_a_run_holds_its_grid_columns_as_hparams_has_them(tmp_path):
    cfg = compose_config(OVERRIDES)
    job = tmp_path / "0"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(OVERRIDES))
    (job / "run_name.txt").write_text(run_name(cfg, OVERRIDES))
    row = job_row(job)
    values = hparams_of(cfg)
    assert {c: getattr(row, c) for c in GRID_COLUMNS} == {c: values[c] for c in GRID_COLUMNS}
    assert row.run_name == run_name(cfg, OVERRIDES)
    assert [c for c in SummaryRow.COLUMNS if c in BY_COLUMN] == list(GRID_COLUMNS)
    assert row.seed == values["seed"]
    # the overrides behind the summary's own columns are the ones its tables leave out of the parameter columns
    assert set(SummaryRow.OWN_KEYS) == {key for c in GRID_COLUMNS for key in BY_COLUMN[c].keys}
