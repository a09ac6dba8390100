"""Section 1 of the report, the data (D1 to D11): its source, splits and statistics as task=inspect measured them,
and the transforms the reference run's config applies."""

from __future__ import annotations

from ..artifacts.records import InspectRecord, SplitSummary
from ..artifacts.runs import Run
from .context import Ctx
from .redraw import class_distribution_figure, samples_figure


def data(c: Ctx) -> None:
    """D1 to D11, in order: the inspect run's measures (the train run's split where there is no inspect run) and
    the data config of the reference run."""
    train, ins = c.run("train"), c.run("inspect")
    data_cfg = c.ref_cfg["data"] if c.ref_cfg else None
    rec = c.inspect_record
    source(c, data_cfg)
    split = (ins or train).read(SplitSummary) if (ins or train) else None  # the same run as D4/D5
    splits(c, split, ins or train, train if ins else None)
    test_split(c, split)
    classes(c, ins, rec)
    particularities(c, rec)
    transforms(c, data_cfg)
    samples(c, ins)
    batch_shape(c, rec, train)


def question(c: Ctx, qid: str, measured: object) -> bool:
    """The heading of question `qid`; False, and the command of task=inspect, where what it reports is missing."""
    c.doc.h3(qid)
    if not measured:
        c.doc.missing("inspect")
    return bool(measured)


def source(c: Ctx, data_cfg: dict | None) -> None:
    """D1: where the images come from and in what format."""
    doc, t = c.doc, c.t
    if not question(c, "D1", data_cfg):
        return
    if data_cfg["path"]:
        where = t["d1_local"].format(path=data_cfg["path"])
    else:
        where = t["d1_hub"].format(name=data_cfg["hub_name"])
    doc.add(t["d1"].format(source=where, n=data_cfg["num_classes"]), "")


def splits(c: Ctx, split: SplitSummary | None, run: Run | None, train: Run | None) -> None:
    """D2: the split sizes and fingerprints of `run`, and the subset the training used where it differs (`train`:
    the train run when `run` is another one)."""
    doc, t = c.doc, c.t
    if not question(c, "D2", split):
        return
    doc.use(run)
    doc.table(t["h_split"], [(k, v, split.fingerprints[k]) for k, v in split.sizes.items()])
    trained = train.read(SplitSummary) if train else None
    if trained and trained.sizes != split.sizes:
        sizes = ", ".join(f"{k} {doc.num(v)}" for k, v in trained.sizes.items())
        doc.add(t["d2_train"].format(sizes=sizes), "")


def test_split(c: Ctx, split: SplitSummary | None) -> None:
    """D3: how the test split was carved."""
    if not question(c, "D3", split):
        return
    c.doc.add(c.t["d3"].format(frac=f"{split.test_fraction:.0%}", seed=split.seed, fp=split.fingerprint), "")


def classes(c: Ctx, ins: Run | None, rec: InspectRecord | None) -> None:
    """D4: the class distribution, drawn and counted."""
    doc, t = c.doc, c.t
    if not question(c, "D4", ins and rec):
        return
    doc.use(ins)
    doc.figure(class_distribution_figure(c, ins), "class_distribution.png", t["D4"])
    doc.table(t["h_classes"], [(k, v["classes_present"], v["min"], v["max"]) for k, v in rec.class_counts.items()])


def particularities(c: Ctx, rec: InspectRecord | None) -> None:
    """D5: grayscale share, image sizes and the train statistics, with the question they raise."""
    doc, t = c.doc, c.t
    if not question(c, "D5", rec):
        return
    sizes = sorted({s for v in rec.image_sizes.values() for s in v})
    share = f"{rec.grayscale_share:.2%}"
    stats = rec.train_stats
    doc.add(
        "- " + t["d5_gray"].format(share=share, modes=", ".join(f"{k}: {v}" for k, v in rec.image_modes.items())),
        "- " + t["d5_sizes"].format(sizes=", ".join(sizes)),
        "- " + t["d5_stats"].format(mean=stats["mean"], std=stats["std"], n=stats["images"]),
        "",
    )
    doc.prompt("D5", t["d5_fact"].format(share=share))


def transforms(c: Ctx, data_cfg: dict | None) -> None:
    """D6 to D9: preprocessing, normalization, the augmentations and their parameters."""
    doc, t = c.doc, c.t
    doc.h3("D6")
    doc.add(t["d6"], "")
    doc.h3("D7")
    if data_cfg:
        doc.add(t["d7"].format(mean=list(data_cfg["mean"]), std=list(data_cfg["std"])), "")
    if question(c, "D8", data_cfg):
        doc.add(augmentations(t, data_cfg), "")
    doc.h3("D9")
    if data_cfg:
        doc.table(t["h_aug"], augmentation_rows(c, data_cfg["augment"]))
        doc.add(t["d9"].format(pipeline=data_cfg.get("pipeline", "reference")), "")


def augmentations(t: dict, data_cfg: dict) -> str:
    """D8: the train-time operations in the order they are applied, with their parameters and probabilities."""
    a = data_cfg["augment"]
    if not a["enabled"]:
        return t["d8_off"]
    ops = []
    rrc, cj = a["random_resized_crop"], a["color_jitter"]
    if rrc["enabled"]:
        ops.append(t["d8_crop"].format(lo=rrc["scale"][0], hi=rrc["scale"][1], r0=rrc["ratio"][0], r1=rrc["ratio"][1]))
    if a["hflip"] > 0:
        ops.append(t["d8_flip"].format(p=a["hflip"]))
    if cj["enabled"]:
        ops.append(t["d8_jitter"].format(b=cj["brightness"], c=cj["contrast"], s=cj["saturation"], h=cj["hue"]))
    if not ops:
        return t["d8_off"]
    how = t["d8_pipeline"] if data_cfg.get("pipeline") == "fast" else t["d8_reference"]
    return t["d8_on"].format(ops="; ".join(ops) + f" ({how})")


def augmentation_rows(c: Ctx, a: dict) -> list[tuple]:
    """D9's table: each augmentation, its parameters, and whether the run applied it."""
    rrc, cj, on = a["random_resized_crop"], a["color_jitter"], a["enabled"]
    return [
        ("RandomResizedCrop(64)", f"scale={rrc['scale']}, ratio={rrc['ratio']}", c.yes(on and rrc["enabled"])),
        ("RandomHorizontalFlip", f"p={a['hflip']}", c.yes(on and a["hflip"] > 0)),
        (
            "ColorJitter",
            ", ".join(f"{k}={cj[k]}" for k in ("brightness", "contrast", "saturation", "hue")),
            c.yes(on and cj["enabled"]),
        ),
    ]


def samples(c: Ctx, ins: Run | None) -> None:
    """D10: a grid of augmented train images."""
    if question(c, "D10", ins):
        c.doc.figure(samples_figure(c, ins), "augmented_samples.png", c.t["D10"])


def batch_shape(c: Ctx, rec: InspectRecord | None, train: Run | None) -> None:
    """D11: the shape of one train batch against the model's input, and the training's batch size where it differs."""
    doc, t = c.doc, c.t
    if not question(c, "D11", rec):
        return
    b = rec.batch
    match = t["match"] if b["matches_model_input"] else t["mismatch"]
    doc.add(t["d11"].format(x=b["x_shape"], dtype=b["x_dtype"], y=b["y_shape"], match=match), "")
    used = (train.config or {}).get("data", {}).get("batch_size") if train else None
    if isinstance(used, int) and used != int(b["x_shape"][0]):  # (data.batch_size=auto: not known here)
        doc.add(t["d11_train"].format(inspect=b["x_shape"][0], train=used), "")
