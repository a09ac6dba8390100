"""`--help` names every task, the user's config groups (not Hydra's internal schema/* ones), each experiment with
its description, and examples that say where the data is."""

from pathlib import Path

import pytest

from tinyimagenet_resnet.config.choices import Task
from tinyimagenet_resnet.config.loader import compose_config
from tinyimagenet_resnet.config.paths import config_dir
from tinyimagenet_resnet.config.validate import validate_config
from tinyimagenet_resnet.errors import ConfigError

from conftest import run_main

CONF = Path(__file__).resolve().parents[1] / "conf"


def test_help_lists_every_task_group_and_experiment(tmp_path):
    text = run_main(["--help"], tmp_path).stdout
    usage = next(ln for ln in text.splitlines() if ln.startswith("Usage: "))
    assert f"[task={'|'.join(t.value for t in Task)}]" in usage
    assert "task=protocol protocol.scale=smoke" in text and "experiment=cpu trainer.budget_minutes=60" in text
    examples = [ln for ln in text.splitlines() if ln.strip().startswith("python -m tinyimagenet_resnet.main")]
    assert examples and all("data.path=" in ln for ln in examples), examples
    groups = text.split("== Config groups (group=option) ==")[1].split("== Config")[0]
    assert "schema" not in groups and "hydra" not in groups
    assert "  model/blocks: b111, b222, b333" in groups
    assert "  sweep: blocks_dropout, lr_wd, optuna, optuna_pareto" in groups
    for f in (CONF / "experiment").glob("*.yaml"):
        line = next(ln for ln in text.splitlines() if ln.startswith(f"  experiment={f.stem}: "))
        assert len(line) > len(f"  experiment={f.stem}: ") + 10 and not line.endswith((":", ","))


def test_the_help_task_list_is_the_task_enum(tmp_path):
    usage = next(ln for ln in run_main(["--help"], tmp_path).stdout.splitlines() if ln.startswith("Usage: "))
    assert usage.split("[task=", 1)[1].split("]", 1)[0].split("|") == [t.value for t in Task]


@pytest.mark.parametrize(
    ("override", "group"), [("model.blocks=[2,2]", "model/blocks"), ("model.dropout=1.5", "model/dropout")]
)
def test_a_blocks_or_dropout_error_names_every_option_of_its_group_in_conf(override, group):
    """The options are read from conf/ (a list written in the schema had drifted: it left out b111)."""
    with pytest.raises(ConfigError) as error:
        validate_config(compose_config([override]))
    options = sorted(p.stem for p in (Path(config_dir()) / group).glob("*.yaml"))
    assert len(options) == 3
    assert f"{group}={'|'.join(options)}" in str(error.value)
