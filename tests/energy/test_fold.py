"""Batch-norm folding: folded copies against the eval-mode original."""

import pytest
import torch
from torch import nn

from neurojoule.energy import fold_batchnorm, unfolded_batchnorms
from neurojoule.neuron import LIF

TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-12}
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def randomize_norms(model: nn.Module) -> nn.Module:
    """Non-trivial running statistics and affine parameters in every batch norm."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, NORMS) and module.running_mean is not None:
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 1.5)
                if module.affine:
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.normal_()
    return model


def assert_folds_exactly(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Fold `model`, check the output against its eval-mode self, return the folded copy."""
    folded = fold_batchnorm(model)
    reference = model.eval()(x)
    tolerance = TOLERANCE[x.dtype]
    torch.testing.assert_close(folded(x), reference, atol=tolerance, rtol=tolerance)
    return folded


def count_norms(model: nn.Module) -> int:
    return sum(isinstance(m, NORMS) for m in model.modules())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_conv_linear_and_head_fold_in_nested_sequentials(dtype):
    model = nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)),
        nn.ReLU(),
        nn.Sequential(nn.Sequential(nn.Conv2d(8, 6, 3, stride=2), nn.BatchNorm2d(6)), nn.ReLU()),
        nn.BatchNorm2d(6),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(6, 5, bias=False),
        nn.BatchNorm1d(5),
    )
    randomize_norms(model).to(dtype)
    folded = assert_folds_exactly(model, torch.randn(4, 3, 9, 9, dtype=dtype))
    assert count_norms(folded) == 0 and unfolded_batchnorms(folded) == []
    assert folded[0][0].bias is not None and folded[-2].bias.dtype == dtype
    assert not folded.training


def test_norms_with_trained_statistics_and_no_affine_fold_after_conv1d_and_linear():
    model = nn.Sequential(
        nn.Conv1d(2, 4, 3, padding=2, dilation=2),
        nn.BatchNorm1d(4),
        nn.Tanh(),
        nn.Conv1d(4, 3, 1),
        nn.BatchNorm1d(3, affine=False),
        nn.Flatten(),
        nn.Linear(3 * 7, 5),
        nn.BatchNorm1d(5),
    )
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, 2, 7) * 3 + 1)
    folded = assert_folds_exactly(model, torch.randn(5, 2, 7))
    assert count_norms(folded) == 0


@pytest.mark.parametrize(
    "build, shape",
    [
        (lambda: (nn.BatchNorm1d(4), nn.Linear(4, 3)), (6, 4)),
        (
            lambda: (nn.BatchNorm1d(4), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(4, 3)),
            (6, 4, 5),
        ),
        (
            lambda: (
                nn.BatchNorm2d(4),
                nn.AvgPool2d(3),
                nn.Flatten(),
                nn.Identity(),
                nn.Linear(4, 3),
            ),
            (6, 4, 3, 3),
        ),
        (
            lambda: (
                nn.BatchNorm2d(4),
                nn.AdaptiveAvgPool2d((1, 1)),
                nn.Flatten(),
                nn.Linear(4, 3),
            ),
            (6, 4, 5, 2),
        ),
        # a 1x1 conv is a Linear over channels at each position (before or without pooling)
        (
            lambda: (
                nn.BatchNorm2d(4),
                nn.Conv2d(4, 3, 1, stride=2),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
            ),
            (6, 4, 5, 5),
        ),
        (lambda: (nn.BatchNorm1d(4), nn.Dropout(), nn.Conv1d(4, 3, 1, bias=False)), (6, 4, 7)),
    ],
)
def test_head_norm_folds_into_the_following_linear(build, shape):
    model = randomize_norms(nn.Sequential(*build())).double()
    folded = assert_folds_exactly(model, torch.randn(shape, dtype=torch.float64))
    assert count_norms(folded) == 0


@pytest.mark.parametrize(
    "build, shape",
    [
        # two values per channel reach the Linear: not a per-channel fold
        (
            lambda: (
                nn.BatchNorm2d(4),
                nn.AdaptiveAvgPool2d((1, 2)),
                nn.Flatten(),
                nn.Linear(8, 3),
            ),
            4,
        ),
        # zero padding counted in the average: the shift would not average to itself
        (lambda: (nn.BatchNorm2d(4), nn.AvgPool2d(3, padding=1), nn.Flatten(), nn.Linear(4, 3)), 2),
        # a non-linearity between the norm and the Linear
        (lambda: (nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 3)), None),
        # the Linear acts on the last spatial axis, not on channels
        (lambda: (nn.BatchNorm2d(4), nn.Linear(4, 3)), 4),
        # a 3x3 conv with zero padding: border taps read padding, not shifted values
        (lambda: (nn.BatchNorm2d(4), nn.Conv2d(4, 3, 3, padding=1)), 4),
    ],
)
def test_unfoldable_norms_stay_listed_and_the_output_is_unchanged(build, shape):
    model = randomize_norms(nn.Sequential(*build())).double()
    size = (5, 4) if shape is None else (5, 4, shape, shape)
    folded = assert_folds_exactly(model, torch.randn(size, dtype=torch.float64))
    assert unfolded_batchnorms(folded) == ["0"]
    assert not folded[0].training


def test_norm_without_running_statistics_is_left():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, track_running_stats=False))
    folded = fold_batchnorm(model)
    assert unfolded_batchnorms(folded) == ["1"]


def test_norms_outside_sequentials_are_listed_with_qualified_names():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 1)
            self.norm = nn.BatchNorm2d(2)
            self.inner = nn.Sequential(nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2))

        def forward(self, x):
            return self.inner(self.norm(self.conv(x)))

    model = randomize_norms(nn.Sequential(Block())).double()
    folded = assert_folds_exactly(model, torch.randn(2, 2, 3, 3, dtype=torch.float64))
    assert unfolded_batchnorms(folded) == ["0.norm"]


def test_original_model_is_untouched():
    model = randomize_norms(nn.Sequential(nn.Linear(3, 4, bias=False), nn.BatchNorm1d(4)))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fold_batchnorm(model)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.training and isinstance(model[1], nn.BatchNorm1d) and model[0].bias is None


@pytest.mark.parametrize(
    "layer, norm, names",
    [
        (nn.Conv2d(3, 8, 3), nn.BatchNorm2d(16), ("BatchNorm2d '1'", "Conv2d '0'")),
        (nn.Linear(4, 5), nn.BatchNorm1d(6), ("BatchNorm1d '1'", "Linear '0'")),
    ],
)
def test_mismatched_features_raise(layer, norm, names):
    with pytest.raises(ValueError) as error:
        fold_batchnorm(nn.Sequential(layer, norm))
    assert all(name in str(error.value) for name in names)


class ChannelAffine(nn.Module):
    """x * weight[c] + bias[c] over channel dim 1; folds a following batch norm into itself."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(channels))
        self.bias = nn.Parameter(torch.randn(channels))

    def forward(self, x):
        view = (-1,) + (1,) * (x.dim() - 2)
        return x * self.weight.view(view) + self.bias.view(view)

    def fold_batchnorm(self, bn):
        # An independent fold: bn written out with its own formula, no helper from fold.py.
        std = torch.sqrt(bn.running_var + bn.eps)
        folded = ChannelAffine(len(self.weight)).to(self.weight.dtype)
        with torch.no_grad():
            folded.weight.copy_(self.weight * bn.weight / std)
            folded.bias.copy_((self.bias - bn.running_mean) * bn.weight / std + bn.bias)
        return folded


def test_a_module_with_the_folding_protocol_folds_its_own_norm():
    model = nn.Sequential(nn.Conv2d(2, 3, 1), nn.ReLU(), ChannelAffine(3), nn.BatchNorm2d(3))
    model = randomize_norms(model).double()
    folded = assert_folds_exactly(model, torch.randn(2, 2, 4, 4, dtype=torch.float64))
    assert count_norms(folded) == 0
    assert isinstance(folded[2], ChannelAffine) and folded[2] is not model[2]
    assert isinstance(folded[3], nn.Identity)


class SpikingConvNet(nn.Module):
    """conv -> BN -> LIF -> conv -> BN -> LIF -> BN head, time-first [T, B, C, H, W]."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4))
        self.lif1 = LIF(time_dim=0, decay=0.5)
        self.block = nn.Sequential(nn.Conv2d(4, 6, 3, stride=2), nn.BatchNorm2d(6))
        self.lif2 = LIF(time_dim=0, decay=0.5)
        self.head = nn.Sequential(
            nn.BatchNorm2d(6), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3)
        )

    def forward(self, x):
        s1 = self.lif1(self.time_folded(self.stem, x))
        s2 = self.lif2(self.time_folded(self.block, s1))
        return s1, s2, self.time_folded(self.head, s2)

    @staticmethod
    def time_folded(module, x):
        return module(x.flatten(0, 1)).unflatten(0, x.shape[:2])


def test_spiking_network_gives_identical_spikes_in_float64():
    model = randomize_norms(SpikingConvNet()).double()
    x = torch.randn(4, 3, 2, 7, 7, dtype=torch.float64) * 2
    folded = fold_batchnorm(model)
    assert unfolded_batchnorms(folded) == []
    with torch.no_grad():
        expected, got = model.eval()(x), folded(x)
    for spikes, reference in zip(got[:2], expected[:2], strict=True):
        assert 0 < reference.mean() < 1  # spiking, not silent or saturated
        assert torch.equal(spikes, reference)
    torch.testing.assert_close(got[2], expected[2], atol=1e-12, rtol=1e-12)


def test_a_layer_used_in_two_places_is_not_folded_into():
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.BatchNorm1d(3), nn.Tanh(), shared, nn.BatchNorm1d(3))
    model = randomize_norms(model).double()
    folded = assert_folds_exactly(model, torch.randn(4, 3, dtype=torch.float64))
    assert unfolded_batchnorms(folded) == ["1", "4"]


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_the_one_fold_helper_equals_the_layer_then_its_norm(affine, bias):
    """util.batchnorm.fold_into_weights, which energy/, the spiking MLP's token mixing and the
    SDN all fold with, against the eval-mode conv followed by its norm."""
    from neurojoule.util.batchnorm import fold_into_weights

    conv = nn.Conv1d(3, 4, 3, bias=bias).double()
    norm = randomize_norms(nn.BatchNorm1d(4, affine=affine).double()).eval()
    weight, folded_bias = fold_into_weights(conv.weight, conv.bias, norm)
    x = torch.randn(2, 3, 9, dtype=torch.float64)
    folded = nn.functional.conv1d(x, weight, folded_bias)
    torch.testing.assert_close(folded, norm(conv(x)), rtol=0, atol=1e-12)


def test_the_fold_helper_spreads_weights_shared_by_all_channels():
    """A first axis of size 1 (weights shared by every channel) folds into one copy a channel."""
    from neurojoule.util.batchnorm import fold_into_weights

    weight, bias = torch.randn(1, 5, 5, dtype=torch.float64), torch.randn(1, 5, dtype=torch.float64)
    norm = randomize_norms(nn.BatchNorm2d(3).double()).eval()
    folded_weight, folded_bias = fold_into_weights(weight, bias, norm)
    assert folded_weight.shape == (3, 5, 5) and folded_bias.shape == (3, 5)
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    mixed = torch.matmul(x, weight.transpose(-1, -2)) + bias[:, None, :]  # along W, shared
    expected = norm(mixed)
    got = torch.matmul(x, folded_weight.transpose(-1, -2)) + folded_bias[:, None, :]
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
