import math

import pytest
import torch
from torch import nn

from tinyimagenet_resnet.config import choices as config_choices
from tinyimagenet_resnet.model import ACTIVATIONS, ResidualBlock, ResNet, count_parameters


def test_parameter_counts_match_the_course_architecture():
    assert count_parameters(ResNet((2, 2, 2))) == 2_826_504
    assert count_parameters(ResNet((3, 3, 3))) == 4_376_584


@pytest.mark.parametrize("blocks", [(2, 2, 2), (3, 3, 3), (1, 2, 1)])
def test_output_shape_and_stage_shapes(blocks):
    model = ResNet(blocks, widths=(16, 32, 64)).eval()
    x = torch.randn(2, 3, 64, 64)
    assert model(x).shape == (2, 200)
    h = model.stem(x)
    assert h.shape == (2, 16, 64, 64)
    for stage, (c, s) in zip(model.stages, [(16, 64), (32, 32), (64, 16)], strict=True):
        h = stage(h)
        assert h.shape == (2, c, s, s)
    assert [len(stage) for stage in model.stages] == list(blocks)


def test_block_layout_dropout2d_between_the_convolutions():
    block = ResNet((2, 2, 2), dropout=0.3).stages[1][0]
    assert isinstance(block, ResidualBlock)
    assert isinstance(block.drop, nn.Dropout2d) and block.drop.p == 0.3
    assert isinstance(block.shortcut, nn.Sequential)  # 1x1 conv + BN where the shape changes
    assert isinstance(ResNet((2, 2, 2)).stages[0][0].shortcut, nn.Identity)
    assert all(not m.bias for m in ResNet((2, 2, 2)).modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_trains_a_step(activation):
    torch.manual_seed(0)
    model = ResNet((1, 1, 1), widths=(16, 16, 16), activation=activation)
    x, y = torch.randn(4, 3, 64, 64), torch.randint(0, 200, (4,))
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert math.isfinite(loss.item())
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_batch_norm_switch():
    with_bn = ResNet((2, 2, 2))
    without = ResNet((2, 2, 2), batch_norm=False)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in with_bn.modules()) > 0
    assert not any(isinstance(m, nn.BatchNorm2d) for m in without.modules())
    assert without(torch.randn(2, 3, 64, 64)).shape == (2, 200)
    assert count_parameters(without) < count_parameters(with_bn)


def test_initial_loss_is_near_ln_num_classes():
    torch.manual_seed(0)
    model = ResNet((2, 2, 2), widths=(16, 32, 64))
    loss = nn.functional.cross_entropy(model(torch.randn(32, 3, 64, 64)), torch.randint(0, 200, (32,)))
    assert abs(loss.item() - math.log(200)) < 0.1


def test_unknown_activation_is_refused():
    with pytest.raises(ValueError, match="model.activation='swish'"):
        ResNet((2, 2, 2), activation="swish")


def test_the_schema_allows_exactly_the_activations_the_model_builds():
    assert tuple(ACTIVATIONS) == config_choices.ACTIVATIONS
