"""Data the checks must cover, in the real parquet layout: a missing or negative label, a shard without the label
column or with other columns, a truncated shard, an empty split: one line naming the split, the row or the file,
exit 2, no traceback, no run folder. Images of another size or mode are resized with one warning (both pipelines)."""

import io
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from conftest import one_error_line, only_run_dir, run_main

ARGS = ["model.widths=[16,16,16]", "data.batch_size=16", "data.num_workers=0", "trainer.epochs=1"]
TRAIN = "data/train-00000-of-00001.parquet"
VALID = "data/valid-00000-of-00001.parquet"


def copy_of(tiny_data: Path, tmp_path: Path) -> Path:
    root = tmp_path / "tiny-imagenet"
    shutil.copytree(tiny_data, root)
    return root


def rewrite(path: Path, change) -> None:
    """Rewrite one parquet file with `change(columns: dict[str, list]) -> dict[str, pa.Array | list]`."""
    table = pq.read_table(path)
    columns = change({name: table.column(name).to_pylist() for name in table.column_names})
    arrays = {k: v if isinstance(v, pa.Array) else pa.array(v, table.schema.field(k).type) for k, v in columns.items()}
    pq.write_table(pa.table(arrays), path)


def null_label(columns):
    columns["label"][5] = None
    return columns


def negative_label(columns):
    columns["label"][7] = -1
    return columns


def renamed(columns):
    return {"img": pa.array(columns["image"], pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
            "target": pa.array(columns["label"], pa.int64())}  # fmt: skip


def second_shard_without_label(root: Path) -> None:
    table = pq.read_table(root / TRAIN).drop_columns(["label"])
    pq.write_table(table, root / "data" / "train-00001-of-00001.parquet")


def truncated(root: Path) -> None:
    data = (root / TRAIN).read_bytes()
    (root / TRAIN).write_bytes(data[: len(data) // 2])


def empty_valid(root: Path) -> None:
    table = pq.read_table(root / VALID)
    pq.write_table(table.slice(0, 0), root / VALID)


CASES = {
    "a missing label": (lambda r: rewrite(r / TRAIN, null_label), ["label missing in split 'train' at index 5", TRAIN]),
    "a negative label": (lambda r: rewrite(r / TRAIN, negative_label), ["label out of range", "index 7", ": -1"]),
    "other column names": (lambda r: rewrite(r / TRAIN, renamed), ["no 'image' and no 'label' column", TRAIN]),
    "a shard without labels": (second_shard_without_label, ["train-00001-of-00001.parquet", "no 'label' column"]),
    "a truncated shard": (truncated, [TRAIN, "not a readable parquet file"]),
    "an empty split": (empty_valid, ["split 'valid' is empty"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_data_the_checks_cover_is_one_line_naming_where(case, tiny_data, tmp_path):
    make, fragments = CASES[case]
    root = copy_of(tiny_data, tmp_path)
    make(root)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    proc = run_main([f"data.path={root}", *ARGS], cwd=cwd, check=False)
    line = one_error_line(proc, *fragments)
    assert len(line) < 600, line  # no class list dumped
    assert not (cwd / "outputs").exists() or not list((cwd / "outputs").glob("*/*"))


def odd_images(columns):
    """Val images of other sizes and modes: 32x48 RGB, 80x80 grayscale, 64x64 RGBA, 40x40 palette."""
    for i, (size, mode) in enumerate((((48, 32), "RGB"), ((80, 80), "L"), ((64, 64), "RGBA"), ((40, 40), "P"))):
        buf = io.BytesIO()
        img = Image.new("RGB", size, (40 * i, 90, 200)).convert(mode)
        img.save(buf, format="PNG")
        columns["image"][i] = {"bytes": buf.getvalue(), "path": None}
    return columns


@pytest.mark.parametrize("pipeline", ["reference", "fast"])
def test_images_of_another_size_or_mode_are_resized_with_one_warning(pipeline, tiny_data, tmp_path):
    root = copy_of(tiny_data, tmp_path)
    rewrite(root / VALID, odd_images)
    proc = run_main([f"data.path={root}", *ARGS, f"data.pipeline={pipeline}"], cwd=tmp_path)
    out = proc.stdout + proc.stderr
    warnings = [ln for ln in out.splitlines() if "resized to 64x64" in ln]
    assert len(warnings) == 1 and "split 'valid'" in warnings[0] and "48x32" in warnings[0], warnings
    assert "Traceback" not in out
    assert (only_run_dir(tmp_path) / "metrics.json").is_file()
