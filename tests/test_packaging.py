"""The configs are found after an editable install (this test session) and after a plain, non-editable install."""

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import tinyimagenet_resnet
from tinyimagenet_resnet.main import config_dir

from conftest import REPO, TINY_ARGS, run_main


def test_editable_install_uses_the_clones_conf():
    assert Path(tinyimagenet_resnet.__file__).resolve().parent.parent == REPO
    assert Path(config_dir()) == REPO / "conf"


def test_plain_install_ships_the_configs(tmp_path, tiny_data):
    src = tmp_path / "src"
    shutil.copytree(
        REPO,
        src,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "venv", "outputs", "multirun", "__pycache__", "*.egg-info", "build", ".pytest_cache"
        ),
    )
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(src),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    assert (target / "tinyimagenet_resnet" / "conf" / "config.yaml").is_file()
    assert (target / "tinyimagenet_resnet" / "conf" / "model" / "blocks" / "b333.yaml").is_file()
    assert not (target / "conf").exists()  # no top-level `conf` package polluting site-packages
    work = tmp_path / "work"
    work.mkdir()
    env = {"PYTHONPATH": str(target)}
    where = subprocess.run(
        [sys.executable, "-c", "import tinyimagenet_resnet.main as m; print(m.__file__, m.config_dir())"],
        cwd=work,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=True,
    ).stdout
    assert str(target) in where and str(REPO) not in where
    run_main([f"data.path={tiny_data}", *TINY_ARGS, "trainer.epochs=1", "model/blocks=b333"], cwd=work, env=env)
    assert list((work / "outputs").glob("*/*/checkpoints/best.ckpt"))


def test_every_package_folder_is_listed_for_a_plain_install():
    """setup.cfg lists the packages by hand (conf/ is mapped in as a package): a new subpackage left out of it fails
    only in a plain install, so the list is checked against the folders here."""
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    listed = set(setup["options"]["packages"].split())
    found = {
        ".".join(init.parent.relative_to(REPO).parts) for init in (REPO / "tinyimagenet_resnet").rglob("__init__.py")
    }
    assert found <= listed, f"add to setup.cfg [options] packages: {sorted(found - listed)}"
