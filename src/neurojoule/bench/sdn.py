"""Training time of one spiking layer: step-by-step BPTT and SLTT, the SDN, the fastest exact LIF.

The layer is SpikingSSM's neuron: multiplicative decay DECAY, hard reset, v_th = 1, on input
currents [batch, channels, L]; timed is spikes = layer(y); (spikes * w).sum().backward().
BPTT and SLTT run the per-step autograd loop (what the SpikingSSM paper timed); "fastest exact"
is neurojoule's default exact LIF on the device (the numba kernel on a CPU).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

import torch
from tqdm import tqdm

from neurojoule.bench import time_forward_backward
from neurojoule.neuron import lif
from neurojoule.neuron.sdn import load_sdn, sdn_lif, sdn_spikes

DECAY = 0.125  # the multiplicative decay factor


def exact_layer(mode: str, backend: str) -> Callable[[torch.Tensor], torch.Tensor]:
    params = replace(sdn_lif(DECAY), detach_state=mode == "sltt")
    return lambda y: lif(y, params, time_dim=-1, backend=backend)[0]


def sdn_layer(device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    sdn = load_sdn(DECAY).to(device)
    return lambda y: sdn_spikes(y.reshape(-1, y.shape[-1]), sdn).reshape(y.shape)


def spikingjelly_layer() -> Callable[[torch.Tensor], torch.Tensor] | None:
    """SpikingJelly's LIFNode with decay_input=False: h = (1 - 1/tau_sj) u + x, the same law."""
    logging.getLogger("torch._library.triton").setLevel(logging.ERROR)
    try:
        from spikingjelly.activation_based import neuron, surrogate
    except ImportError:
        return None

    def run(y: torch.Tensor) -> torch.Tensor:
        node = neuron.LIFNode(
            tau=1.0 / (1.0 - DECAY),
            decay_input=False,
            v_reset=sdn_lif(DECAY).v_reset,
            surrogate_function=surrogate.Sigmoid(),
            step_mode="m",
        )
        return node(y.movedim(-1, 0)).movedim(0, -1)

    return run


def run(
    lengths=(1024, 2048, 4096, 8192, 16384),
    batch: int = 64,
    channels: int = 16,
    repeats: int = 3,
    bptt_max_length: int = 8192,
    device: str = "cpu",
    seed: int = 0,
    progress: bool = True,
) -> list[dict]:
    """One row per L: seconds of each method and the SDN's speed-ups."""
    dev = torch.device(device)
    methods = {
        "bptt": exact_layer("bptt", "torch"),
        "sltt": exact_layer("sltt", "torch"),
        "sdn": sdn_layer(dev),
        "fastest_exact": exact_layer("bptt", "auto"),
        "spikingjelly": spikingjelly_layer(),
    }
    generator = torch.Generator().manual_seed(seed)
    rows = []
    jobs = [(length, name) for length in lengths for name in methods]
    bar = tqdm(jobs, desc="bench sdn", unit="case", disable=not progress)
    inputs = {}
    for length, name in bar:
        bar.set_postfix_str(f"L={length} {name}")
        if length not in inputs:
            y = torch.randn(batch, channels, length, generator=generator)
            inputs = {length: (y.to(dev), torch.randn(y.shape, generator=generator).to(dev))}
            rows.append({"L": length, "batch": batch, "channels": channels, "device": dev.type})
        fn = methods[name]
        too_long = name in ("bptt", "sltt", "spikingjelly") and length > bptt_max_length
        rows[-1][f"{name}_s"] = (
            None
            if fn is None or too_long
            else time_forward_backward(fn, *inputs[length], repeats)[0]
        )
    for row in rows:
        row["speedup_sdn_vs_bptt"] = _ratio(row["bptt_s"], row["sdn_s"])
        row["speedup_sdn_vs_fastest_exact"] = _ratio(row["fastest_exact_s"], row["sdn_s"])
    return rows


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return None if numerator is None or denominator is None else numerator / denominator


def format_table(rows: list[dict], machine: str) -> str:
    def cell(value, fmt=".3f"):
        return "—" if value is None else format(value, fmt)

    first = rows[0] if rows else {}
    lines = [
        f"one spiking layer, forward+backward, batch {first.get('batch')} x "
        f"{first.get('channels')} channels, seconds (median); {machine}",
        f"{'L':>6} {'BPTT':>8} {'SLTT':>8} {'SDN':>8} {'exact*':>8} {'SpikingJelly':>12} "
        f"{'SDN vs BPTT':>12} {'SDN vs exact*':>14}",
    ]
    for r in rows:
        lines.append(
            f"{r['L']:>6} {cell(r['bptt_s']):>8} {cell(r['sltt_s']):>8} {cell(r['sdn_s']):>8} "
            f"{cell(r['fastest_exact_s']):>8} {cell(r['spikingjelly_s']):>12} "
            f"{cell(r['speedup_sdn_vs_bptt'], '.1f'):>12} "
            f"{cell(r['speedup_sdn_vs_fastest_exact'], '.2f'):>14}"
        )
    lines.append("exact* = neurojoule's default exact LIF on this device (numba kernel on a CPU)")
    return "\n".join(lines)
