"""The sections about the project as a whole: 0 (general information, the commands that ran, the protocol's
choices), 10 (limits, to fill in) and 11 (reproducibility: seed, config and the artifact checklist)."""

from __future__ import annotations

import platform
from importlib import metadata

import torch
from omegaconf import OmegaConf

from ..config.kinds import GRIDS, RUN_KINDS, SWEEP_KINDS
from .commands import command_of, sweep_command
from .context import Ctx
from .document import HOW, g3


def general(c: Ctx) -> None:
    """Section 0: project, author, environment versions, the exact commands of the runs, the protocol's choices."""
    doc, t = c.doc, c.t
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for pkg in ("torchvision", "hydra-core", "omegaconf", "datasets", "optuna", "tensorboard", "tinyimagenet-resnet"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "–"
    fill = "✏️ " + t["fill"] + ": "
    scale = (c.opts.protocol or {}).get("scale")
    if scale in ("smoke", "cpu"):  # what these numbers are not, before any of them
        doc.add(f"> ⚠️ **{t[f'banner_title_{scale}']}** {t[f'banner_{scale}']}", "")
    doc.add(
        f"- **{t['project']}:** {c.opts.project or t['project_title']}",
        f"- **{t['author']}:** {c.opts.author or fill + t['fill_author']}",
        f"- **{t['repo']}:** {c.opts.repo or fill + t['fill_repo']}",
        f"- **{t['env']}:** "
        + ", ".join(f"{k} `{v}`" for k, v in versions.items())
        + f"; `{platform.platform()}`; cuda: `{torch.cuda.is_available()}`",
        "",
    )
    doc.add(f"**{t['commands']}:**", "", "```bash")
    for kind in ("inspect", "baselines", "overfit", "lr_find", "train", "evaluate"):
        if c.run(kind):
            doc.add(f"# {kind}", command_of(c.run(kind)))
    for kind, sweep in c.sweeps.items():
        doc.add(f"# sweep: {kind}", sweep_command(sweep))
    doc.add("```", "")
    if c.opts.protocol:
        protocol_choices(c)


def protocol_choices(c: Ctx) -> None:
    """Which choice came from where: the hand-offs between the protocol's steps."""
    doc, t, state = c.doc, c.t, c.opts.protocol
    steps = state.get("steps", {})
    rows = []
    lf = steps.get("lr_find", {})
    lr = lf.get("choice", {}).get("lr")
    rows.append(("lr_find", "lr", g3(lr) if lr is not None else t["lr_none"], "`lr_find/lr_find.json`"))
    for step in GRIDS:
        st = steps.get(step, {})
        source = t["from_grid"].format(sweep=step, job=st.get("best_job", "?"))
        for key, value in st.get("choice", {}).items():
            rows.append((step, key, g3(value) if isinstance(value, float) else value, source))
    tr = steps.get("train", {})
    if tr.get("choice"):
        rows.append(("train", "checkpoint", f"`{tr['choice']['checkpoint']}`", t["from_train"]))
    doc.add(f"**{t['protocol_choices'].format(name=state.get('name', ''), scale=state.get('scale', ''))}:**", "")
    doc.table(t["h_choice"], rows)


def limits(c: Ctx) -> None:
    """Section 10: the limits to discuss, as a checklist to fill in."""
    c.doc.add(*(f"- [ ] ✏️ {item}" for item in c.t["limits"]), "")


def reproducibility(c: Ctx) -> None:
    """Section 11: seed and config of the reference run; each kind of run or sweep, found or to run."""
    doc, t, ref = c.doc, c.t, c.ref_cfg
    if ref:
        doc.add(
            t["s11_seed"].format(seed=ref["seed"], det=c.yes(ref["trainer"]["deterministic"])),
            "",
            "```yaml",
            OmegaConf.to_yaml(OmegaConf.create({k: ref[k] for k in ("seed", "model", "optim") if k in ref})).rstrip(),
            "```",
            "",
        )
    doc.add(f"**{t['checklist']}:**", "")
    for kind in RUN_KINDS:
        run = c.run(kind)
        doc.add(f"- [{'x' if run else ' '}] {kind}: " + (f"`{run.path}` — `{command_of(run)}`" if run else HOW[kind]))
    for kind in SWEEP_KINDS:
        s = c.sweeps.get(kind)
        if s or kind in GRIDS:
            doc.add(f"- [{'x' if s else ' '}] sweep {kind}: " + (f"`{s}` — `{sweep_command(s)}`" if s else HOW[kind]))
    doc.add("")
