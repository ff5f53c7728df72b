import cmath
import math

import numpy as np
import pytest
import torch
from torch import nn

from neurojoule.layers import S4D, S4DKernel, S4DKernelConfig, fft_conv, ssm_parameter_groups


def _complex(p: torch.Tensor) -> np.ndarray:
    p = p.detach().double().numpy()
    return p[..., 0] + 1j * p[..., 1]


def _ssm_numbers(kernel: S4DKernel, rows: slice) -> tuple[np.ndarray, ...]:
    """(A, dt, B, C) of the kernel channels `rows`, in float64 numpy."""
    A = -np.exp(kernel.log_A_real.detach().double().numpy()) + 1j * (
        kernel.A_imag.detach().double().numpy()
    )
    dt = np.exp(kernel.log_dt.detach().double().numpy())
    return A[rows], dt[rows], _complex(kernel.B)[rows], _complex(kernel.C)[rows]


def _recurrence(u: np.ndarray, A, dt, B, C, reverse: bool = False) -> np.ndarray:
    """Run h_t = A_bar h_{t-1} + B_bar u_t, y_t = 2 Re(C h_t) step by step; u is [batch, H, L]."""
    A_bar = np.exp(dt[:, None] * A)
    B_bar = (A_bar - 1) / A * B
    h = np.zeros(u.shape[:2] + A.shape[-1:], dtype=complex)
    y = np.zeros_like(u)
    steps = range(u.shape[-1] - 1, -1, -1) if reverse else range(u.shape[-1])
    for t in steps:
        h = A_bar * h + B_bar * u[..., t, None]
        y[..., t] = 2 * (C * h).sum(-1).real
    return y


def _randomise(layer: S4D) -> None:
    """Move every parameter off its structured init so each one matters for the output."""
    kernel = layer.kernel
    with torch.no_grad():
        kernel.log_A_real.add_(0.3 * torch.randn_like(kernel.log_A_real))
        kernel.A_imag.add_(torch.randn_like(kernel.A_imag))
        kernel.B.copy_(torch.randn_like(kernel.B))


@pytest.mark.parametrize("init", ["lin", "inv"])
@pytest.mark.parametrize("trainable_B", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_fft_path_equals_recurrence(init, trainable_B, bidirectional):
    H, L = 3, 37
    config = S4DKernelConfig(
        d_state=8, dt_min=0.01, dt_max=0.5, init=init, bidirectional=bidirectional,
        trainable_B=trainable_B,
    )  # fmt: skip
    layer = S4D(H, config).double()
    _randomise(layer)
    u = torch.randn(2, H, L, dtype=torch.float64)

    y = layer(u).detach().numpy()

    un = u.numpy()
    D = layer.D.detach().numpy()
    ref = _recurrence(un, *_ssm_numbers(layer.kernel, slice(0, H))) + D[:, None] * un
    if bidirectional:
        ref += _recurrence(un, *_ssm_numbers(layer.kernel, slice(H, 2 * H)), reverse=True)
    np.testing.assert_allclose(y, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())


def test_kernel_equals_closed_form():
    kernel = S4DKernel(2, S4DKernelConfig(d_state=4, init="inv")).double()
    with torch.no_grad():
        kernel.B.copy_(torch.randn_like(kernel.B))
    L = 5
    A, dt, B, C = _ssm_numbers(kernel, slice(None))

    expected = np.zeros((2, L))
    for h in range(2):
        for n in range(2):
            dtA = dt[h] * A[h, n]
            weight = C[h, n] * B[h, n] * (cmath.exp(dtA) - 1) / A[h, n]
            for step in range(L):
                expected[h, step] += 2 * (weight * cmath.exp(dtA * step)).real

    got = kernel(L)
    assert got.shape == (1, 2, L)
    np.testing.assert_allclose(got[0].detach().numpy(), expected, rtol=1e-10, atol=1e-12)


def test_fft_conv_equals_direct_sums():
    L = 11
    u = torch.randn(2, 3, L, dtype=torch.float64)
    k_causal = torch.randn(3, L, dtype=torch.float64)
    k_anti = torch.randn(3, 7, dtype=torch.float64)  # shorter than the input

    direct = torch.zeros_like(u)
    for t in range(L):
        for j in range(L):
            if t - j >= 0:
                direct[..., t] += k_causal[:, j] * u[..., t - j]
            if j < 7 and t + j < L:
                direct[..., t] += k_anti[:, j] * u[..., t + j]

    torch.testing.assert_close(fft_conv(u, k_causal, k_anti), direct)
    flipped = fft_conv(u.flip(-1), k_anti).flip(-1)
    torch.testing.assert_close(fft_conv(u, k_causal) + flipped, direct)


def test_fft_conv_rejects_kernel_longer_than_input():
    with pytest.raises(ValueError, match="kernel length"):
        fft_conv(torch.randn(1, 2, 4), torch.randn(2, 5))


def _b_as_complex(kernel: S4DKernel) -> torch.Tensor:
    return torch.view_as_complex(kernel.B.detach())


@pytest.mark.parametrize("bidirectional", [False, True])
def test_lin_init(bidirectional):
    N = 16
    kernel = S4DKernel(5, S4DKernelConfig(d_state=N, init="lin", bidirectional=bidirectional))
    channels = 10 if bidirectional else 5
    A = kernel.A.detach()
    assert A.shape == (channels, N // 2)
    expected_imag = torch.tensor([math.pi * n for n in range(N // 2)])
    torch.testing.assert_close(A.real, torch.full_like(A.real, -0.5))
    torch.testing.assert_close(A.imag, expected_imag.expand(channels, -1))
    torch.testing.assert_close(_b_as_complex(kernel), torch.ones(channels, N // 2, dtype=A.dtype))


def test_inv_init():
    N = 8
    A = S4DKernel(3, S4DKernelConfig(d_state=N, init="inv")).A.detach()
    expected_imag = torch.tensor([N / math.pi * (N / (2 * n + 1) - 1) for n in range(N // 2)])
    torch.testing.assert_close(A.real, torch.full_like(A.real, -0.5))
    torch.testing.assert_close(A.imag, expected_imag.expand(3, -1))


@pytest.mark.parametrize(("dt_min", "dt_max"), [(1e-3, 1e-1), (1e-4, 1e-1), (0.05, 0.05)])
def test_log_dt_within_range(dt_min, dt_max):
    log_dt = S4DKernel(
        512, S4DKernelConfig(d_state=4, dt_min=dt_min, dt_max=dt_max)
    ).log_dt.detach()
    assert log_dt.shape == (512,)
    eps = 1e-6
    assert log_dt.min() >= math.log(dt_min) - eps
    assert log_dt.max() <= math.log(dt_max) + eps
    if dt_min < dt_max:  # spread over the range, not stuck at one end
        assert log_dt.std() > 0.2 * (math.log(dt_max) - math.log(dt_min))


def test_c_is_complex_standard_normal_and_d_standard_normal():
    layer = S4D(256, S4DKernelConfig(d_state=64))
    C = torch.view_as_complex(layer.kernel.C.detach())
    assert abs(C.real.var().item() - 0.5) < 0.05
    assert abs(C.imag.var().item() - 0.5) < 0.05
    assert abs(layer.D.detach().var().item() - 1.0) < 0.3


def test_fixed_b_is_a_buffer_and_trainable_b_a_parameter():
    fixed = S4DKernel(2, S4DKernelConfig(d_state=4))
    trainable = S4DKernel(2, S4DKernelConfig(d_state=4, trainable_B=True))
    assert "B" not in dict(fixed.named_parameters())
    assert "B" in dict(fixed.named_buffers())
    assert "B" in dict(trainable.named_parameters())


@pytest.mark.parametrize(("lr", "kernel_lr"), [(0.01, 0.001), (5e-4, 5e-4)])
def test_parameter_groups(lr, kernel_lr):
    model = nn.Sequential(
        S4D(4, S4DKernelConfig(d_state=8)),
        nn.Linear(4, 4),
        S4D(4, S4DKernelConfig(d_state=8, bidirectional=True, trainable_B=True)),
    )
    groups = ssm_parameter_groups(model, lr=lr, weight_decay=0.05)

    ids = [id(p) for group in groups for p in group["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters()}

    kernel_group = next(g for g in groups if g["name"] == "ssm_kernel")
    default_group = next(g for g in groups if g["name"] == "default")
    expected_kernel = [
        model[0].kernel.log_dt, model[0].kernel.log_A_real, model[0].kernel.A_imag,
        model[2].kernel.log_dt, model[2].kernel.log_A_real, model[2].kernel.A_imag,
        model[2].kernel.B,
    ]  # fmt: skip
    assert {id(p) for p in kernel_group["params"]} == {id(p) for p in expected_kernel}
    assert kernel_group["lr"] == kernel_lr
    assert kernel_group["weight_decay"] == 0.0
    assert default_group["lr"] == lr
    assert default_group["weight_decay"] == 0.05
    assert any(p is model[0].kernel.C for p in default_group["params"])
    assert any(p is model[0].D for p in default_group["params"])
    torch.optim.AdamW(groups)  # an optimizer accepts them as they are


def test_parameter_groups_without_kernels_and_with_shared_layer():
    assert [g["name"] for g in ssm_parameter_groups(nn.Linear(2, 2), 0.01, 0.01)] == ["default"]
    shared = S4D(2, S4DKernelConfig(d_state=4))
    groups = ssm_parameter_groups(nn.Sequential(shared, shared), 0.01, 0.01)
    ids = [id(p) for group in groups for p in group["params"]]
    assert len(ids) == len(set(ids)) == len(list(shared.parameters()))


@pytest.mark.parametrize("bidirectional", [False, True])
def test_gradients_reach_every_parameter(bidirectional):
    H = 3
    layer = S4D(H, S4DKernelConfig(d_state=8, bidirectional=bidirectional, trainable_B=True))
    layer(torch.randn(2, H, 64)).square().sum().backward()
    for name, p in layer.named_parameters():
        assert torch.isfinite(p.grad).all(), name
        # every kernel channel (both directions) gets a gradient
        per_channel = p.grad.abs().reshape(p.shape[0], -1).amax(dim=-1)
        assert (per_channel > 0).all(), name


@pytest.mark.parametrize(
    "shape", [(3, 16), (2, 4, 16), (2, 3, 4, 16), (2, 16, 3)], ids=["2d", "H", "4d", "BLH"]
)
def test_bad_input_shape_raises(shape):
    layer = S4D(3, S4DKernelConfig(d_state=4))
    with pytest.raises(ValueError, match=r"\[B, H, L\] with H = d_model = 3"):
        layer(torch.randn(shape))


def test_integer_input_raises():
    with pytest.raises(ValueError, match="float tensor"):
        S4D(3, S4DKernelConfig(d_state=4))(torch.ones(1, 3, 5, dtype=torch.long))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"d_state": 5},
        {"d_state": 0},
        {"init": "legs"},
        {"dt_min": 0.1, "dt_max": 0.01},
        {"dt_min": 0.0},
    ],
)
def test_bad_config_raises(kwargs):
    with pytest.raises(ValueError, match="S4D"):
        S4DKernelConfig(**kwargs)


@pytest.mark.parametrize("shape", [(0, 3, 16), (2, 3, 0)], ids=["batch-0", "length-0"])
def test_empty_input_raises_saying_so(shape):
    with pytest.raises(ValueError, match="expected at least one sequence of at least one step"):
        S4D(3, S4DKernelConfig(d_state=4))(torch.randn(shape))


def test_kernel_length_follows_input_and_is_causal():
    layer = S4D(2, S4DKernelConfig(d_state=4))
    u = torch.randn(1, 2, 20)
    y_short = layer(u[..., :12])
    y_long = layer(u)
    assert y_long.shape == u.shape
    torch.testing.assert_close(y_long[..., :12], y_short, atol=1e-5, rtol=1e-5)
