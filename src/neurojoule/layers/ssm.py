"""Diagonal state space (S4D) convolution: the "dendrite" of the spiking SSM block.

Per channel h and complex mode n (N/2 modes for a state size N):
    A = -exp(log_A_real) + i * A_imag,   dt = exp(log_dt)
    ZOH:  A_bar = exp(dt A),   B_bar = (exp(dt A) - 1) / A * B
    K[h, l] = 2 Re( sum_n C_n B_bar_n A_bar_n^l )
The layer computes y = causal_conv(u, K) + D u with FFTs of length 2L. A bidirectional
kernel adds an anti-causal part: a second, independent kernel run over the reversed sequence.
A unidirectional layer also runs as the recurrence the kernel unrolls, one step at a time
(S4D.step, for streaming), carrying the complex state x_t = A_bar x_{t-1} + C B_bar u_t.
The kernel options travel as one S4DKernelConfig from the model's config to every kernel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from neurojoule.layers.checks import check_sequence_batch

INITS = ("lin", "inv")
KERNEL_LR_MAX = 1e-3


def _imag_init(init: str, d_state: int) -> torch.Tensor:
    n = torch.arange(d_state // 2, dtype=torch.float64)
    if init == "lin":
        return (math.pi * n).float()
    # inv: N/pi * (N/(2n+1) - 1), from the asymptotics of the HiPPO eigenvalues
    return (d_state / math.pi * (d_state / (2 * n + 1) - 1)).float()


@dataclass(frozen=True)
class S4DKernelConfig:
    """Options of the S4D kernels: state size N (N/2 complex modes), the range of the initial
    step sizes dt, the initialisation of the imaginary parts of A ("lin" or "inv"), a second
    anti-causal kernel, and whether B trains (with the kernel's parameter group)."""

    d_state: int = 64
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    init: str = "lin"
    bidirectional: bool = False
    trainable_B: bool = False

    def __post_init__(self):
        if self.d_state < 2 or self.d_state % 2:
            raise ValueError(
                f"S4D d_state must be even and >= 2 (N/2 complex modes), got {self.d_state}"
            )
        if not 0 < self.dt_min <= self.dt_max:
            raise ValueError(
                f"S4D needs 0 < dt_min <= dt_max, got dt_min={self.dt_min}, dt_max={self.dt_max}"
            )
        if self.init not in INITS:
            raise ValueError(f"S4D init must be one of {INITS}, got {self.init!r}")


def _check_channels(d_model: int) -> None:
    if d_model < 1:
        raise ValueError(f"S4D d_model must be >= 1, got {d_model}")


class S4DKernel(nn.Module):
    """Convolution kernels of H diagonal SSMs (2H when bidirectional), d_state/2 complex modes.

    Parameters are laid out per kernel channel: rows [0, H) are the causal kernel, rows
    [H, 2H) the anti-causal one. `C` and `B` are complex, stored as real views [..., 2].
    `forward(length)` returns the kernels shaped [directions, H, length].
    """

    def __init__(self, d_model: int, config: S4DKernelConfig | None = None):
        super().__init__()
        _check_channels(d_model)
        config = config or S4DKernelConfig()
        self.d_model, self.config = d_model, config
        d_state = config.d_state
        channels = self.directions * d_model
        modes = d_state // 2

        log_dt = torch.empty(channels).uniform_(math.log(config.dt_min), math.log(config.dt_max))
        self.log_dt = nn.Parameter(log_dt)
        self.log_A_real = nn.Parameter(torch.full((channels, modes), math.log(0.5)))
        self.A_imag = nn.Parameter(_imag_init(config.init, d_state).repeat(channels, 1))
        # Real and imaginary parts N(0, 1/2) each: a complex standard normal.
        self.C = nn.Parameter(torch.randn(channels, modes, 2) * math.sqrt(0.5))
        B = torch.view_as_real(torch.ones(channels, modes, dtype=torch.cfloat)).clone()
        if config.trainable_B:
            self.B = nn.Parameter(B)
        else:
            self.register_buffer("B", B)

    @property
    def bidirectional(self) -> bool:
        return self.config.bidirectional

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def A(self) -> torch.Tensor:
        """The continuous-time diagonal state matrix, complex [channels, modes]."""
        return torch.complex(-torch.exp(self.log_A_real), self.A_imag)

    def kernel_parameters(self) -> list[nn.Parameter]:
        """Parameters that train with a capped learning rate and no weight decay."""
        params = [self.log_dt, self.log_A_real, self.A_imag]
        return params + [self.B] if self.config.trainable_B else params

    def discretised(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(dt A, C B_bar) of the ZOH discretisation, complex [channels, modes]: A_bar is
        exp(dt A), and the kernel and the recurrence both weigh mode n by C_n B_bar_n."""
        A = self.A
        dtA = A * torch.exp(self.log_dt).unsqueeze(-1)
        C = torch.view_as_complex(self.C)
        B = torch.view_as_complex(self.B)
        # expm1 keeps (exp(dtA) - 1) accurate when dt|A| is tiny (Path-X uses dt down to 1e-4).
        return dtA, C * B * torch.expm1(dtA) / A

    def forward(self, length: int) -> torch.Tensor:
        dtA, weights = self.discretised()
        steps = torch.arange(length, device=dtA.device, dtype=dtA.real.dtype)
        # Re(w e^{(a + ib) l}) = e^{al} (Re w cos bl - Im w sin bl): real exp/cos/sin are several
        # times faster than a complex exp on a CPU, forward and backward.
        decay = torch.exp(dtA.real.unsqueeze(-1) * steps)
        phase = dtA.imag.unsqueeze(-1) * steps
        real_part = weights.real.unsqueeze(-1) * torch.cos(phase)
        real_part = real_part - weights.imag.unsqueeze(-1) * torch.sin(phase)
        kernel = 2 * (decay * real_part).sum(1)
        return kernel.view(self.directions, self.d_model, length)

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"d_model={self.d_model}, d_state={c.d_state}, init={c.init!r}, "
            f"bidirectional={c.bidirectional}, trainable_B={c.trainable_B}"
        )


def _pad_to(k: torch.Tensor, length: int) -> torch.Tensor:
    if k.shape[-1] > length:
        raise ValueError(f"kernel length {k.shape[-1]} exceeds the input length {length}")
    return F.pad(k, (0, length - k.shape[-1]))


def _two_sided_kernel(k_causal: torch.Tensor, k_anticausal: torch.Tensor) -> torch.Tensor:
    """One length-2L kernel whose circular convolution gives both directions at once.

    Tap m >= 0 weighs u[t - m] (causal); tap 2L - j weighs u[t + j] (anti-causal); both
    kernels have a tap at lag 0, so index 0 holds their sum and index L stays zero.
    """
    lag0 = F.pad(k_anticausal[..., :1], (0, k_causal.shape[-1] - 1))
    future = F.pad(k_anticausal[..., 1:].flip(-1), (1, 0))
    return torch.cat([k_causal + lag0, future], dim=-1)


def fft_conv(
    u: torch.Tensor, k: torch.Tensor, k_anticausal: torch.Tensor | None = None
) -> torch.Tensor:
    """Convolve along the last axis: y[t] = sum_j k[j] u[t-j] (+ sum_j k_anticausal[j] u[t+j]).

    Kernels broadcast against `u` and may be shorter than it. The anti-causal part equals
    flip(causal_conv(flip(u), k_anticausal)).
    """
    length = u.shape[-1]
    k = _pad_to(k, length)
    if k_anticausal is not None:
        k = _two_sided_kernel(k, _pad_to(k_anticausal, length))
    n = 2 * length
    y = torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(k, n=n), n=n)
    return y[..., :length]


class S4D(nn.Module):
    """S4D layer on [B, H, L]: y = conv(u, K) + D u, with the kernel as long as the input."""

    def __init__(self, d_model: int, config: S4DKernelConfig | None = None):
        super().__init__()
        self.d_model = d_model
        self.kernel = S4DKernel(d_model, config)
        self.D = nn.Parameter(torch.randn(d_model))

    def forward(self, u: torch.Tensor, state: torch.Tensor | None = None):
        """y [B, H, L]; with `state`, one step of the recurrence instead: see `step`."""
        if state is not None:
            return self.step(u, state)
        self._check_input(u)
        k = self.kernel(u.shape[-1])
        k_anticausal = k[1] if self.kernel.bidirectional else None
        return fft_conv(u, k[0], k_anticausal) + self.D.unsqueeze(-1) * u

    def initial_state(self, batch: int) -> torch.Tensor:
        """The state of `batch` sequences before their first step: zeros, complex
        [batch, H, d_state / 2], of the complex dtype that matches the parameters."""
        self._check_causal()
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"S4D initial_state needs a batch size >= 1, got {batch!r}")
        modes = self.kernel.A_imag.shape[-1]
        dtype = torch.complex128 if self.D.dtype == torch.float64 else torch.complex64
        return torch.zeros(batch, self.d_model, modes, dtype=dtype, device=self.D.device)

    def step(self, u: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of the recurrence the convolution unrolls: u [B, H, 1] -> (y [B, H, 1],
        new state), with x the state [B, H, d_state / 2] (complex):

            x_t = A_bar x_{t-1} + (C B_bar) u_t,    y_t = 2 Re(sum_n x_t[n]) + D u_t

        (C folded into the state), so from `initial_state` the outputs equal forward()'s on
        the whole sequence. O(H N) work and memory per step, whatever the position.
        Unidirectional kernels only.
        """
        self._check_causal()
        self._check_input(u)
        if u.shape[-1] != 1:
            raise ValueError(f"S4D step expects one step [B, H, 1], got shape {tuple(u.shape)}")
        expected = (u.shape[0], self.d_model, self.kernel.A_imag.shape[-1])
        if not isinstance(state, torch.Tensor) or not state.is_complex():
            got = state.dtype if isinstance(state, torch.Tensor) else type(state).__name__
            raise ValueError(f"S4D step expects a complex state tensor {expected}, got {got}")
        if tuple(state.shape) != expected:
            raise ValueError(
                f"S4D step expects a complex state {expected} (batch, H, d_state / 2), "
                f"got shape {tuple(state.shape)}"
            )
        A_bar, weights = self._recurrence()
        state = A_bar * state + weights * u
        y = 2 * state.real.sum(-1, keepdim=True) + self.D.unsqueeze(-1) * u
        return y, state

    def _recurrence(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(A_bar, C B_bar) of the kernel. Without autograd they are kept between steps while
        the kernel's parameters stay the same tensors (same storage, dtype and version)."""
        kernel = self.kernel
        if torch.is_grad_enabled():
            dtA, weights = kernel.discretised()
            return torch.exp(dtA), weights
        params = (kernel.log_dt, kernel.log_A_real, kernel.A_imag, kernel.C, kernel.B)
        key = tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in params)
        cached = self.__dict__.get("_step_constants")
        if cached is None or cached[0] != key:
            dtA, weights = kernel.discretised()
            cached = (key, torch.exp(dtA), weights)
            self.__dict__["_step_constants"] = cached
        return cached[1], cached[2]

    def _check_causal(self) -> None:
        if self.kernel.bidirectional:
            raise ValueError(
                "S4D runs one step at a time only with a unidirectional kernel (the anti-causal "
                "half reads later inputs): expected bidirectional=False, got True"
            )

    def energy_dense_macs(self, u: torch.Tensor, output: torch.Tensor) -> int:
        """Multiply-adds of running this layer as its recurrence at inference, per step and
        channel: the N/2 complex modes cost 4 (A h) + 2 (B u) + 2 (Re C h) real MACs each, per
        kernel direction, plus 1 for D u. Read by neurojoule.energy's counter."""
        batch, channels, length = u.shape
        per_step = self.kernel.directions * 8 * self.kernel.A.shape[-1] + 1
        return batch * channels * length * per_step

    def _check_input(self, u: torch.Tensor) -> None:
        check_sequence_batch(u, self.d_model, "S4D")


def ssm_parameter_groups(model: nn.Module, lr: float, weight_decay: float) -> list[dict]:
    """Optimizer groups: S4D kernel parameters (lr capped at 1e-3, no weight decay), the rest.

    Every parameter of `model` appears exactly once; empty groups are left out.
    """
    kernel_params: dict[int, nn.Parameter] = {}
    for module in model.modules():
        if isinstance(module, S4DKernel):
            kernel_params.update((id(p), p) for p in module.kernel_parameters())
    others = [p for p in model.parameters() if id(p) not in kernel_params]
    groups = [
        {"name": "default", "params": others, "lr": lr, "weight_decay": weight_decay},
        {
            "name": "ssm_kernel",
            "params": list(kernel_params.values()),
            "lr": min(lr, KERNEL_LR_MAX),
            "weight_decay": 0.0,
        },
    ]
    return [group for group in groups if group["params"]]
