"""Property-based: random overrides either compose, validate and build a model, or give ONE ConfigError line."""

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinyimagenet_resnet.config.loader import compose_config
from tinyimagenet_resnet.config.validate import validate_config
from tinyimagenet_resnet.errors import ConfigError
from tinyimagenet_resnet.model import build_model
from tinyimagenet_resnet.training.optim import build_optimizer, build_scheduler

KEYS = [
    "model.blocks",
    "model.widths",
    "model.dropout",
    "model.activation",
    "model.batch_norm",
    "optim.lr",
    "optim.weight_decay",
    "optim.betas",
    "data.batch_size",
    "data.eval_batch_size",
    "trainer.epochs",
    "data.train_subset",
    "data.test_fraction",
    "data.mean",
    "data.std",
    "data.augment.hflip",
    "data.augment.random_resized_crop.scale",
    "data.augment.color_jitter.hue",
    "trainer.device",
    "trainer.precision",
    "trainer.channels_last",
    "seed",
    "task",
    "data.num_workers",
    "resume",
]
GROUPS = {
    "optim": ["adam", "adamw", "sgd"],
    "model/blocks": ["b222", "b333"],
    "model/dropout": ["p00", "p01", "p03"],
    "scheduler": ["none", "cosine", "onecycle"],
}

numbers = st.one_of(st.integers(-3, 40), st.floats(-2, 2, allow_nan=False).map(lambda x: round(x, 4)))
words = st.sampled_from(
    [
        "relu",
        "gelu",
        "selu",
        "elu",
        "leaky_relu",
        "swish",
        "cpu",
        "auto",
        "cuda",
        "fp32",
        "bf16",
        "train",
        "evaluate",
        "abc",
        "null",
        "true",
        "false",
    ]
)
values = st.one_of(
    numbers,
    words,
    st.booleans().map(str).map(str.lower),
    st.lists(numbers, min_size=0, max_size=4).map(lambda xs: "[" + ",".join(map(str, xs)) + "]"),
)
overrides = st.tuples(
    st.dictionaries(st.sampled_from(KEYS), values, max_size=5),
    st.dictionaries(st.sampled_from(sorted(GROUPS)), st.just(None), max_size=2),
    st.randoms(use_true_random=False),
).map(lambda t: [f"{k}={v}" for k, v in t[0].items()] + [f"{g}={t[2].choice(GROUPS[g])}" for g in t[1]])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(overrides)
def test_random_overrides_validate_or_fail_with_one_line(args):
    try:
        cfg = compose_config(args)  # type errors and unknown keys (e.g. optim.betas with optim=sgd)
        validate_config(cfg)  # ranges and rules across keys
    except ConfigError as exc:
        msg = str(exc)
        assert "\n" not in msg and ("allowed" in msg or "not a config key" in msg), msg
        key = msg.split("=", 1)[0].split(":", 1)[0].split("[", 1)[0]
        assert key in {k for k in KEYS} | {
            "task",
            "optim.name",
            "scheduler.name",
            "ckpt_path",
            "model.widths",
            "optim.nesterov",
        }, msg
        return
    # valid: the model, optimizer and scheduler really build and a forward pass works
    model = build_model(cfg.model, 200)
    optimizer = build_optimizer(cfg.optim, model.parameters())
    build_scheduler(cfg.scheduler, optimizer, int(cfg.trainer.epochs) * 10)
    out = model.eval()(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 200) and math.isfinite(out.sum().item())


@pytest.mark.parametrize(
    "override, line",
    [
        ("model.widths=[16,abc,64]", "model.widths[1]='abc': allowed three positive integers, e.g. [64,128,256]"),
        ("optim.betas=[0.9,x]", "optim.betas[1]='x': allowed two numbers in [0, 1), e.g. [0.9, 0.999]"),
        ("data.mean=[0.5,x,0.5]", "data.mean[1]='x': allowed three numbers (one per RGB channel)"),
    ],
)
def test_a_bad_item_of_a_list_names_the_item_and_what_the_list_allows(override, line):
    # the fuzz above reaches these only by chance: the item's index, its value, and the list key's allowed values
    with pytest.raises(ConfigError) as info:
        compose_config([override])
    assert str(info.value) == line
