"""The protocol's saved state and the overrides it passes on: `state.json` read back and checked on a re-run (the same
scale and overrides, or a one-line refusal), and the user's overrides split into those for every step and those for
the grids' launcher. Light on purpose: the entry point's pre-flight calls `check_overrides`."""

from __future__ import annotations

import json
from pathlib import Path

from hydra.core.hydra_config import HydraConfig

from ..errors import UserError

OWN_KEYS = ("sweep", "experiment", "ckpt_path", "resume")  # what the protocol chooses for each step itself


def check_overrides(overrides: list[str]) -> None:
    """Refuse the keys the protocol chooses itself (also called by the entry point's pre-flight, before a
    `sweep=` turns the command into a multirun)."""
    clash = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in OWN_KEYS]
    if clash:
        raise UserError(
            f"{clash[0]}: task=protocol chooses each step's sweep, experiment and checkpoint itself; allowed: "
            "settings of the runs (data.*, model.*, trainer.*, optim.* ...) and hydra/launcher"
        )


def user_overrides() -> tuple[list[str], list[str]]:
    """(the user's overrides for every step, their hydra/launcher overrides for the grids)."""
    hc = HydraConfig.get()
    own = ("task=", "protocol.", "report.", "hydra.")
    user = [o for o in hc.overrides.task if not o.startswith(own) and not o.startswith("~protocol")]
    launcher = [o for o in hc.overrides.hydra if o.startswith(("hydra/launcher=", "hydra.launcher."))]
    launcher += [o for o in hc.overrides.task if o.startswith(("hydra/launcher=", "hydra.launcher."))]
    return user, launcher


def read_state(path: Path) -> dict:
    """A saved `state.json`, refused in one line when it is not one this version wrote."""
    try:
        state = json.loads(path.read_text())
    except ValueError:
        state = None
    if not (
        isinstance(state, dict) and isinstance(state.get("steps"), dict) and isinstance(state.get("overrides"), list)
    ):
        raise UserError(
            f"{path}: not a protocol state this version can read; move the folder away or choose another protocol.name"
        ) from None
    return state


def open_state(root: Path, name: str, scale: str, user: list[str]) -> dict:
    """The state of protocol `root`: the saved one for a re-run of the same command (the same scale and overrides,
    else a one-line refusal), a new one for a new protocol."""
    path = root / "state.json"
    if not path.is_file():
        return {"name": name, "scale": scale, "overrides": user, "steps": {}}
    state = read_state(path)
    if state.get("scale") != scale or state.get("overrides") != user:
        raise UserError(
            f"protocol {root} was started with protocol.scale={state.get('scale')} and overrides "
            f"{state.get('overrides')}; run it with those to resume, or choose another protocol.name"
        )
    return state
