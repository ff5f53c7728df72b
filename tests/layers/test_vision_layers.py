"""Blocks of the vision SNNs against plainly written formulas."""

import pytest
import torch
from torch import nn

from neurojoule.layers.attention import SpikingSelfAttention
from neurojoule.layers.mixer import AxisLinear, MixerBlock
from neurojoule.layers.patch import SpikingPatchEncoding, SpikingPatchSplitting
from neurojoule.layers.time_first import TimeFolded


def spikes(*shape, rate=0.3, dtype=torch.float64):
    return (torch.rand(*shape) < rate).to(dtype)


@pytest.mark.parametrize("axis", [2, 3])
def test_axis_linear_mixes_one_axis_with_shared_weights(axis):
    layer = AxisLinear(5, axis).double()
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    w, b = layer.weight[0], layer.bias[0]
    if axis == 2:  # out[n, c, g, j] = sum_h w[g, h] x[n, c, h, j] + b[g]
        expected = torch.einsum("gh,nchj->ncgj", w, x) + b[None, None, :, None]
    else:
        expected = torch.einsum("gh,ncjh->ncjg", w, x) + b[None, None, None, :]
    torch.testing.assert_close(layer(x), expected)


def test_axis_linear_folds_a_channel_batch_norm_into_per_channel_weights():
    layer = AxisLinear(4, 2).double()
    bn = nn.BatchNorm2d(3).double().eval()
    with torch.no_grad():
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.normal_()
    x = torch.randn(2, 3, 4, 6, dtype=torch.float64)
    folded = layer.fold_batchnorm(bn)
    assert folded.weight.shape == (3, 4, 4)
    torch.testing.assert_close(folded(x), bn(layer(x)), atol=1e-12, rtol=1e-12)


def test_axis_linear_rejects_a_wrong_size():
    with pytest.raises(ValueError, match="7 positions along axis 3"):
        AxisLinear(7, 3)(torch.zeros(1, 2, 7, 5))


def test_spiking_patch_encoding_follows_the_published_wiring():
    """n2 += convBN(LIF(n1)); n3 += n1 + convBN(LIF(n2)); output concat(n1, n2, n3)."""
    spe = SpikingPatchEncoding(4, 6).double().eval()
    x = spikes(2, 3, 4, 8, 8)
    b1, b2, b3 = spe.branches
    n1, n2, n3 = b1(x), b2(x), b3(x)
    n2 = n2 + spe.cross_12(spe.lif_1(n1))
    n3 = n3 + n1 + spe.cross_23(spe.lif_2(n2))
    out = spe(x)
    assert out.shape == (2, 3, 6, 4, 4)
    torch.testing.assert_close(out, torch.cat([n1, n2, n3], dim=2))
    with pytest.raises(ValueError, match="multiple of 3"):
        SpikingPatchEncoding(4, 8)


def test_mixer_block_sums_membrane_inputs_before_each_lif():
    block = MixerBlock(6, 4, 4).double().eval()
    r = torch.randn(2, 3, 6, 4, 4, dtype=torch.float64)
    x = spikes(2, 3, 6, 4, 4)
    r1 = r + block.token(x)
    x1 = block.lif_token(r1)
    r2 = r1 + block.channel(x1)
    out_r, out_x = block(r, x)
    torch.testing.assert_close(out_r, r2)
    torch.testing.assert_close(out_x, block.lif_channel(r2))
    assert set(out_x.unique().tolist()) <= {0.0, 1.0}


def test_attention_equals_the_softmax_free_q_kt_v_in_published_order():
    torch.manual_seed(1)
    attention = SpikingSelfAttention(8, heads=2, scale=0.125).double()  # BN on batch statistics
    captured = {}
    for name in ("q_lif", "k_lif", "v_lif"):
        getattr(attention, name).register_forward_hook(
            lambda m, i, out, name=name: captured.__setitem__(name, out)
        )
    attention.attn_lif.register_forward_pre_hook(
        lambda m, args: captured.__setitem__("attn_in", args[0])
    )
    x = 2 * torch.rand(3, 2, 8, 5, dtype=torch.float64)  # [T, B, D, N]
    attention(x)

    def tokens(channel_major):  # [T, B, D, N] -> [T, B, heads, N, d]
        return channel_major.reshape(3, 2, 2, 4, 5).transpose(-1, -2)

    q, k, v = (tokens(captured[name]) for name in ("q_lif", "k_lif", "v_lif"))
    published = (q @ k.transpose(-1, -2)) @ v * 0.125  # (Q K^T) V, no softmax
    expected = published.transpose(-1, -2).reshape(3, 2, 8, 5)
    torch.testing.assert_close(captured["attn_in"], expected, atol=0, rtol=0)
    assert captured["q_lif"].sum() > 0 and captured["v_lif"].sum() > 0


def test_attention_needs_heads_dividing_the_dim():
    with pytest.raises(ValueError, match="not divisible by 5 heads"):
        SpikingSelfAttention(8, heads=5)


def test_patch_splitting_pools_to_the_token_count():
    sps = SpikingPatchSplitting(1, 16, pools=(True, False, True, False))
    tokens = sps(torch.rand(2, 1, 28, 28), steps=3)
    assert tokens.shape == (3, 2, 16, 49)  # 28 -> 14 -> 14 -> 7 -> 7: 7 x 7 tokens
    with pytest.raises(ValueError, match="divisible by 8"):
        SpikingPatchSplitting(1, 12)


def test_time_folded_applies_a_batch_norm_over_time_and_batch():
    bn = nn.BatchNorm1d(3)
    x = torch.randn(4, 5, 3)
    out = TimeFolded(bn)(x)
    flat = x.reshape(20, 3)
    expected = (flat - flat.mean(0)) / torch.sqrt(flat.var(0, unbiased=False) + bn.eps)
    torch.testing.assert_close(out, expected.reshape(4, 5, 3), atol=1e-5, rtol=1e-5)
