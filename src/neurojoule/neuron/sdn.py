"""The surrogate dynamic network (SDN) of SpikingSSM: LIF membrane potentials in parallel.

For the hard-reset LIF with multiplicative decay factor `decay`, v_th = 1 and v_reset = 0, the
SDN predicts from the input currents y the decayed after-reset potential
mem[t] = decay * u[t-1], so that every step's spike s[t] = H(mem[t] + y[t] - 1) is computed at
once instead of step by step. The network is strictly causal: mem[t] sees y[t-8] ... y[t-1].
One network is trained per decay; with the threshold scaling y / v_th it serves every
threshold.

Files: JSON of the folded network (plain numbers, safe to load). Format "neurojoule-sdn-3"
names the decay "decay"; the earlier formats (-1, -2, and the same under the package's former
name) named it "tau", and -1 named the residual layer "mix". All of them load.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from neurojoule.neuron.lif_core import LIFParameters, lif_trace
from neurojoule.neuron.surrogate import Surrogate, spike
from neurojoule.util.batchnorm import fold_into_weights
from neurojoule.util.files import atomic_write_text

SHIPPED_DECAYS = (0.125, 0.25, 0.5)
FORMAT = "neurojoule-sdn-3"
CHUNK_STEPS = 65_536  # time steps per chunk of CPU inference (benchmarks/sdn_forms.py)


def sdn_lif(decay: float) -> LIFParameters:
    """The exact LIF an SDN stands in for: multiplicative `decay`, v_th = 1, hard reset to 0."""
    return LIFParameters(decay=decay, v_threshold=1.0, v_reset=0.0, reset="hard")


class SurrogateDynamicNetwork(nn.Module):
    """Conv1d(1->C, k=1) -> causal depthwise Conv1d(C, k) + BN -> ReLU -> `depth` times
    [Conv1d(C->C, k=1) + BN + residual -> ReLU] -> Conv1d(C->1, k=1). Input and output [N, L].

    Depth 1 is the published network; deeper ones fit the slower decays (0.25, 0.5) better
    for a few hundred more multiply-adds per step."""

    def __init__(self, decay: float, channels: int = 8, kernel_size: int = 8, depth: int = 1):
        super().__init__()
        if depth < 1:
            raise ValueError(f"the SDN needs depth >= 1 (residual C->C layers), got {depth}")
        sdn_lif(decay)  # checks the decay
        self.decay, self.channels = float(decay), channels
        self.kernel_size, self.depth = kernel_size, depth
        self.encode = nn.Conv1d(1, channels, 1, bias=False)
        # padding k on both sides, then keep the first L outputs: output t sees t-k .. t-1
        self.temporal = nn.Conv1d(
            channels, channels, kernel_size, padding=kernel_size, groups=channels
        )
        self.temporal_norm = nn.BatchNorm1d(channels)
        self.mixes = nn.ModuleList(nn.Conv1d(channels, channels, 1) for _ in range(depth))
        self.mix_norms = nn.ModuleList(nn.BatchNorm1d(channels) for _ in range(depth))
        self.decode = nn.Conv1d(channels, 1, 1)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if y.dim() != 2:
            raise ValueError(f"the SDN expects input currents [N, L], got shape {tuple(y.shape)}")
        if y.is_cuda:
            return self._forward_convolutions(y)
        if self.training:  # batch norm needs the statistics of the whole batch
            return self._forward_windows(y)
        # rows are independent: chunks of ~64K steps keep the window tensors in cache
        rows = max(1, CHUNK_STEPS // y.shape[1])
        return torch.cat([self._forward_windows(part) for part in y.split(rows)])

    def _forward_convolutions(self, y: torch.Tensor) -> torch.Tensor:
        length = y.shape[-1]
        z = self.encode(y.unsqueeze(1))
        z = torch.relu(self.temporal_norm(self.temporal(z)[..., :length]))
        for mix, norm in zip(self.mixes, self.mix_norms, strict=True):
            z = torch.relu(norm(mix(z)) + z)
        return self.decode(z).squeeze(1)

    def _forward_windows(self, y: torch.Tensor) -> torch.Tensor:
        """The same function as matrix products on each step's window y[t-k .. t-1]: on a CPU
        about 3x faster than torch's depthwise Conv1d (benchmarks/sdn_forms.py)."""
        batch, length = y.shape
        windows = causal_windows(y, self.kernel_size)
        # encode (a scale per channel) then the depthwise taps: one [C, k] map of the window
        taps = self.encode.weight[:, 0, 0, None] * self.temporal.weight[:, 0, :]
        z = torch.relu(self.temporal_norm(F.linear(windows, taps, self.temporal.bias)))
        for mix, norm in zip(self.mixes, self.mix_norms, strict=True):
            z = torch.relu(norm(F.linear(z, mix.weight[..., 0], mix.bias)) + z)
        return F.linear(z, self.decode.weight[..., 0], self.decode.bias).reshape(batch, length)

    def folded(self) -> SurrogateDynamicNetwork:
        """An eval-mode copy with each BatchNorm merged into the conv before it (BN -> identity)."""
        copy = SurrogateDynamicNetwork(self.decay, self.channels, self.kernel_size, self.depth)
        copy.to(self.encode.weight)  # same dtype and device
        copy.load_state_dict(self.state_dict())
        copy.eval()
        convs, norms = [copy.temporal, *copy.mixes], [copy.temporal_norm, *copy.mix_norms]
        with torch.no_grad():
            for conv, norm in zip(convs, norms, strict=True):
                weight, bias = fold_into_weights(conv.weight, conv.bias, norm)
                conv.weight.copy_(weight)
                conv.bias.copy_(bias)
        copy._drop_norms()
        return copy

    def _drop_norms(self) -> None:
        self.temporal_norm = nn.Identity()
        self.mix_norms = nn.ModuleList(nn.Identity() for _ in range(self.depth))


def causal_windows(y: torch.Tensor, k: int) -> torch.Tensor:
    """Each step's window of the k inputs before it, y[t-k .. t-1] (zeros before the start):
    [N, L] -> [N * L, k]."""
    length = y.shape[1]
    return F.pad(y, (k, 0)).unfold(1, k, 1)[:, :length].reshape(-1, k)


def exact_targets(y: torch.Tensor, decay: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(mem, spikes) of the exact hard-reset LIF on currents y [N, L]: mem[t] = decay * u[t-1]."""
    spikes, h = lif_trace(y, sdn_lif(decay), time_dim=-1)
    return h - y, spikes


def sdn_spikes(
    y: torch.Tensor, sdn: nn.Module, surrogate: Surrogate | str = "triangle"
) -> torch.Tensor:
    """Spikes of threshold-1 LIF neurons on currents y [N, L], all steps in parallel.

    The potential is predicted without gradient; the surrogate gradient flows through the
    direct y term only (as in SpikingSSM)."""
    with torch.no_grad():
        mem = sdn(y.detach())
    return spike(mem + y - 1.0, surrogate)


def spike_agreement(sdn: nn.Module, y: torch.Tensor) -> tuple[float, float]:
    """(fraction of steps where SDN spikes equal exact LIF spikes, mean absolute error of mem)."""
    mem, exact = exact_targets(y, sdn.decay)
    with torch.no_grad():
        predicted = sdn(y)
    agree = ((predicted + y - 1.0 >= 0).to(y.dtype) == exact).double().mean().item()
    return agree, (predicted - mem).abs().mean().item()


def _current_key(name: str) -> str:
    """Files of format neurojoule-sdn-1 (depth 1 only) named the residual layer `mix`."""
    return "mixes.0." + name[len("mix.") :] if name.startswith("mix.") else name


def _weights_dir() -> Path:
    return Path(str(resources.files("neurojoule.neuron") / "sdn_weights"))


def shipped_path(decay: float) -> Path:
    """Where the network for `decay` ships."""
    return _weights_dir() / f"sdn_decay_{decay:g}.json"


def save_sdn(sdn: SurrogateDynamicNetwork, path: str | Path, metrics: dict | None = None) -> None:
    """Write the folded network as JSON (plain numbers: safe to load), atomically."""
    folded = sdn.folded()
    payload = {
        "format": FORMAT,
        "decay": sdn.decay,
        "channels": sdn.channels,
        "kernel_size": sdn.kernel_size,
        "depth": sdn.depth,
        "metrics": metrics or {},
        "state": {name: value.tolist() for name, value in folded.state_dict().items()},
    }
    atomic_write_text(path, json.dumps(payload))


def load_sdn(decay: float | None = None, path: str | Path | None = None) -> SurrogateDynamicNetwork:
    """A folded SDN from a file, or the network shipped for `decay`, in eval mode. With both,
    the file must hold the network for that decay."""
    if path is None:
        if decay is None:
            raise ValueError("load_sdn needs a decay or a path")
        path = shipped_path(decay)
        if not path.exists():
            raise ValueError(
                f"no SDN is shipped for decay {decay:g} (shipped: {SHIPPED_DECAYS}); train one "
                f"with `neurojoule sdn train` for this decay (e.g. `neurojoule sdn train --decay "
                f"{decay:g} --out FILE`), measure it with `neurojoule sdn eval --path FILE` and "
                f"load it with load_sdn(path=FILE); for training in lif_mode 'sdn', add it to "
                f"the package as sdn_weights/{shipped_path(decay).name}"
            )
    try:
        payload = json.loads(Path(path).read_text())
        stored = payload["decay"] if "decay" in payload else payload["tau"]
        net = SurrogateDynamicNetwork(
            stored, payload["channels"], payload["kernel_size"], payload.get("depth", 1)
        )
        net._drop_norms()
        net.load_state_dict({_current_key(k): torch.tensor(v) for k, v in payload["state"].items()})
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{path} is not a neurojoule SDN file: {error}") from None
    if decay is not None and abs(net.decay - decay) > 1e-12:
        raise ValueError(f"{path} holds an SDN for decay {net.decay:g}, not {decay:g}")
    net.metrics = payload.get("metrics", {})
    return net.eval()
