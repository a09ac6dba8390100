import itertools

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from tinyimagenet_resnet.config.loader import compose_config
from tinyimagenet_resnet.data.datamodule import DataModule
from tinyimagenet_resnet.data.sampler import EpochOrder
from tinyimagenet_resnet.data.source import load_raw
from tinyimagenet_resnet.errors import ConfigError, DataError

from tiny_dataset import write_tiny_imagenet


def data_cfg(path, **over):
    """The project's `data` config (composed on its schema) pointed at `path`."""
    cfg = compose_config([]).data
    cfg.path = str(path)
    cfg.num_workers = 0
    cfg.batch_size = 8
    for k, v in over.items():
        OmegaConf.update(cfg, k, v)
    return cfg


def test_loads_through_datasets_and_carves_stratified_splits(tiny_data):
    dm = DataModule.setup(data_cfg(tiny_data), seed=42)
    sizes = {k: len(v) for k, v in dm.splits.items()}
    assert sizes == {"train": 72, "val": 20, "test": 8}
    # test = 10% of train, stratified: 2 per class; train keeps the other 18 per class
    assert np.bincount(dm.splits["test"].labels).tolist() == [2, 2, 2, 2]
    assert np.bincount(dm.splits["train"].labels).tolist() == [18, 18, 18, 18]
    assert not set(dm.splits["train"].indices) & set(dm.splits["test"].indices)
    assert dm.splits["val"].source_split == "valid"


def test_split_is_a_function_of_the_seed(tiny_data):
    a = DataModule.setup(data_cfg(tiny_data), seed=1).summary()
    b = DataModule.setup(data_cfg(tiny_data), seed=1).summary()
    c = DataModule.setup(data_cfg(tiny_data), seed=2).summary()
    assert a.fingerprint == b.fingerprint
    assert a.fingerprints["test"] != c.fingerprints["test"]


def test_subsets_are_stratified_and_checked(tiny_data):
    dm = DataModule.setup(data_cfg(tiny_data, train_subset=8, val_subset=4), seed=0)
    assert np.bincount(dm.splits["train"].labels).tolist() == [2, 2, 2, 2]
    assert np.bincount(dm.splits["val"].labels).tolist() == [1, 1, 1, 1]
    with pytest.raises(ConfigError, match=r"data.train_subset=3: allowed null or an int in \[4, 72\]"):
        DataModule.setup(data_cfg(tiny_data, train_subset=3), seed=0)
    with pytest.raises(ConfigError, match="data.val_subset=21"):
        DataModule.setup(data_cfg(tiny_data, val_subset=21), seed=0)
    # fewer images than classes: a seeded random sample when stratification is off
    a = DataModule.setup(data_cfg(tiny_data, train_subset=3, stratify_subsets=False), seed=0).splits["train"]
    b = DataModule.setup(data_cfg(tiny_data, train_subset=3, stratify_subsets=False), seed=0).splits["train"]
    assert len(a) == 3 and a.fingerprint() == b.fingerprint()


def test_batches_are_rgb_normalised_and_only_train_is_random(tiny_data):
    dm = DataModule.setup(data_cfg(tiny_data), seed=0)
    x, y = next(iter(dm.train_loader(torch.device("cpu"))))
    assert x.shape == (8, 3, 64, 64) and x.dtype == torch.float32 and y.shape == (8,)
    # grayscale (mode L) images in the fixture come out as 3 channels
    gray = [i for i in range(len(dm.splits["val"])) if dm.dataset("val").raw_image(i).mode == "RGB"]
    assert len(gray) == len(dm.splits["val"])
    val = dm.dataset("val")
    assert torch.equal(val[3][0], val[3][0])  # deterministic
    train = dm.dataset("train")
    assert not torch.equal(train[3][0], train[3][0])  # augmented
    no_aug = dm.dataset("train", train_augment=False)
    assert torch.equal(no_aug[3][0], val.transform(train.raw_image(3)))


@pytest.mark.parametrize("pipeline", ["fast", "reference"])
def test_data_order_depends_only_on_seed_and_epoch(tiny_data, pipeline):
    dm = DataModule.setup(data_cfg(tiny_data, pipeline=pipeline), seed=0)
    loader = dm.train_loader(torch.device("cpu"))
    first = [y for _, y in loader.epoch(3)]
    assert [len(y) for y in first] == [8] * 9 and torch.equal(
        torch.cat(first).sort().values, torch.tensor(dm.splits["train"].labels).sort().values
    )
    assert not torch.equal(torch.cat([y for _, y in loader.epoch(4)]), torch.cat(first))
    assert [y.tolist() for _, y in loader.epoch(3, skip=2)] == [y.tolist() for y in first[2:]]
    if pipeline == "fast":  # the augmentation draws of a batch depend only on its position: a resume sees the same
        again = list(loader.epoch(3, skip=2))
        assert all(torch.equal(a[0], b[0]) for a, b in zip(list(loader.epoch(3))[2:], again, strict=True))


def test_epochs_of_a_fixed_number_of_steps_cut_one_continuous_stream():
    whole = EpochOrder(10, 4, seed=1)  # one data pass per epoch: batches of 4, 4, 2
    stream = EpochOrder(10, 4, seed=1, steps_per_epoch=3)  # 12 samples per epoch, across passes
    passes = torch.cat([whole.permutation(p) for p in range(4)])
    assert [len(b) for b in whole.epoch_indices(0)] == [4, 4, 2]

    def take(batches, n):  # a budgeted epoch's stream has no end of its own: the trainer takes what it plans
        return torch.cat(list(itertools.islice(batches, n)))

    assert torch.equal(take(stream.epoch_indices(0), 3), passes[:12])
    assert torch.equal(take(stream.epoch_indices(1), 3), passes[12:24])
    assert torch.equal(take(stream.epoch_indices(1, skip_batches=2), 1), passes[20:24])
    # the last epoch of a re-planned budget runs on past its planned end, into the next passes
    assert torch.equal(take(stream.epoch_indices(1), 5), passes[12:32])


def test_missing_path_gives_one_clear_line(tmp_path):
    with pytest.raises(DataError) as err:
        load_raw(data_cfg(tmp_path / "nope"))
    msg = str(err.value)
    assert "data.path=" in msg and "no such folder" in msg and "\n" not in msg


def test_folder_that_is_not_a_dataset(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"data.path='.*': not a dataset folder \(no parquet files\)"):
        load_raw(data_cfg(tmp_path))


def test_hub_unreachable_offline_names_data_path():
    cfg = data_cfg("x")
    cfg.path = None
    with pytest.raises(DataError) as err:
        load_raw(cfg)
    assert "zh-plus/tiny-imagenet" in str(err.value) and "data.path=" in str(err.value)


def test_out_of_range_label_is_refused_at_load(tmp_path):
    root = write_tiny_imagenet(tmp_path / "bad", n_train=2, n_val=1, bad_label=250)
    where = r"\(.*train-00000-of-00001.parquet, row 0\)"
    with pytest.raises(DataError, match=rf"label out of range in split 'train' at index 0 {where}: 250.*0..199"):
        load_raw(data_cfg(root))


def test_corrupt_image_names_split_and_index(tmp_path):
    root = write_tiny_imagenet(tmp_path / "corrupt", n_train=3, n_val=1, corrupt_train_index=5)
    dm = DataModule.setup(data_cfg(root, test_fraction=0.34), seed=0)
    ds = dm.dataset("train")
    pos = int(np.flatnonzero(dm.splits["train"].indices == 5)[0]) if 5 in dm.splits["train"].indices else None
    target = ds if pos is not None else dm.dataset("test")
    pos = pos if pos is not None else int(np.flatnonzero(dm.splits["test"].indices == 5)[0])
    with pytest.raises(DataError, match=r"corrupt image in split 'train' at index 5"):
        target[pos]


def test_a_stale_datasets_cache_of_a_same_named_folder_is_rebuilt(tmp_path):
    # datasets keys a local folder's cache on its name and file mtimes: make two same-named folders collide
    import os

    a = write_tiny_imagenet(tmp_path / "a" / "same-name", n_train=3, n_val=1)
    b = write_tiny_imagenet(tmp_path / "b" / "same-name", n_train=6, n_val=1)
    for f in (b / "data").iterdir():
        stamp = (a / "data" / f.name).stat()
        os.utime(f, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert len(load_raw(data_cfg(a))[0]["train"]) == 12
    assert len(load_raw(data_cfg(b))[0]["train"]) == 24


def test_shard_globs_restrict_the_files(real_data):
    cfg = data_cfg(real_data, train_files="data/train-00000-*", val_files="data/valid-00000-*")
    raw, _, _ = load_raw(cfg)
    assert 6200 <= len(raw["train"]) <= 6400 and len(raw["valid"]) == 5000
    with pytest.raises(DataError, match="data.train_files='data/nothing-\\*'"):
        load_raw(data_cfg(real_data, train_files="data/nothing-*"))


def test_the_decoded_cache_of_a_same_named_folder_with_one_image_changed_is_not_reused(tiny_data, tmp_path):
    # same name, same rows and labels, same modification time: only the first train image differs
    import io
    import os
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    a, b = tmp_path / "a" / "tiny-imagenet", tmp_path / "b" / "tiny-imagenet"
    shutil.copytree(tiny_data, a)
    shutil.copytree(tiny_data, b)
    shard = b / "data" / "train-00000-of-00001.parquet"
    stamp = shard.stat()
    table = pq.read_table(shard)
    images = table.column("image").to_pylist()
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (255, 0, 0)).save(buf, format="PNG")
    images[0] = {"bytes": buf.getvalue(), "path": None}
    table = table.set_column(0, "image", pa.array(images, table.schema.field("image").type))
    pq.write_table(table, shard)
    os.utime(shard, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    cache = tmp_path / "decoded"
    first = {}
    for name, root in (("a", a), ("b", b)):
        dm = DataModule.setup(data_cfg(root, pipeline="fast", cache_dir=str(cache)), seed=0)
        pos = int(np.flatnonzero(dm.splits["train"].indices == 0)[0])
        first[name] = np.array(dm.decoded("train")[pos])
    assert (first["b"] == [255, 0, 0]).all() and not (first["a"] == [255, 0, 0]).all()
