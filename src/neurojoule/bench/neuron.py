"""Exact LIF forward + backward: neurojoule against SpikingJelly and snnTorch, side by side.

Each peer runs the same input [L, channels] in the configuration that matches one of ours:
  - SpikingJelly multi-step LIFNode  vs  input decay, tau = 2, hard reset, sigmoid(alpha=4)
  - snnTorch Leaky (zero reset, no reset delay) vs multiplicative decay, tau = 0.125, hard
    reset, atan(alpha=2): snnTorch's own loop over time, as its users write it.
Times are medians of repeated runs after three warm-up runs; spikes are compared element for
element. With `busy`, every timing runs beside a competing CPU-bound process (a Python busy
loop), as on a machine someone else is using: the rows then say how each implementation
copes with a core it does not have to itself.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import torch
from tqdm import tqdm

from neurojoule.bench import time_forward_backward
from neurojoule.neuron import LIFParameters, lif
from neurojoule.neuron.lif_core import triton_available

SJ_TAU = 2.0
SJ_DYNAMICS = LIFParameters(tau=SJ_TAU, reset="hard", surrogate="sigmoid(alpha=4)")
SNNTORCH_TAU = 0.125  # snnTorch's beta: our multiplicative decay factor
SNNTORCH_DYNAMICS = LIFParameters(decay=SNNTORCH_TAU, reset="hard", surrogate="atan(alpha=2)")


def ours(dynamics: LIFParameters, leak: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """Our LIF with `dynamics`, its decay factor or time constant (whichever it has) `leak`."""
    params = replace(dynamics, **{"decay" if dynamics.tau is None else "tau": leak})
    return lambda x: lif(x, params, time_dim=0)[0]


def our_backend(device: str) -> str:
    """The backend `lif(..., backend="auto")` runs on `device`."""
    if device.startswith("cuda"):
        return "triton" if triton_available() else "torch"
    return "numba"


@contextlib.contextmanager
def competing_process(settle_seconds: float = 0.5) -> Iterator[None]:
    """A CPU-bound Python process running beside the block, stopped when it ends. The block
    starts `settle_seconds` after the process, once the interpreter runs its loop (and any
    reading of the machine's load is a fresh one, see neuron.lif_core)."""
    rival = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(settle_seconds)
    try:
        yield
    finally:
        rival.kill()
        rival.wait()


def spikingjelly_lif() -> Callable[[torch.Tensor], torch.Tensor] | None:
    # SpikingJelly's import makes torch log whether triton is there; the row records what ran
    logging.getLogger("torch._library.triton").setLevel(logging.ERROR)
    try:
        from spikingjelly.activation_based import neuron, surrogate
    except ImportError:
        return None

    def run(x: torch.Tensor) -> torch.Tensor:
        node = neuron.LIFNode(
            tau=SJ_TAU,
            decay_input=True,
            v_threshold=1.0,
            v_reset=0.0,
            surrogate_function=surrogate.Sigmoid(alpha=4.0),
            step_mode="m",
        )
        return node(x)

    return run


def snntorch_leaky() -> Callable[[torch.Tensor], torch.Tensor] | None:
    try:
        import snntorch
        from snntorch import surrogate
    except ImportError:
        return None

    def run(x: torch.Tensor) -> torch.Tensor:
        node = snntorch.Leaky(
            beta=SNNTORCH_TAU,
            threshold=1.0,
            spike_grad=surrogate.atan(alpha=2.0),
            reset_mechanism="zero",
            reset_delay=False,
        )
        mem = torch.zeros_like(x[0])
        spikes = []
        for x_t in x:
            s, mem = node(x_t, mem)
            spikes.append(s)
        return torch.stack(spikes)

    return run


def run(
    lengths=(1024, 4096, 16384),
    channels: int = 2048,
    repeats: int = 5,
    snntorch_max_length: int = 4096,
    seed: int = 0,
    progress: bool = True,
    device: str = "cpu",
    busy: bool = False,
) -> list[dict]:
    """One row per length with our times, the peers' times, speed-ups and spike equality;
    with `busy`, measured beside a competing process."""
    with competing_process() if busy else contextlib.nullcontext():
        rows = _measure(lengths, channels, repeats, snntorch_max_length, seed, progress, device)
    for row in rows:
        row.update(device=device, ours_backend=our_backend(device), busy=busy)
    return rows


def _measure(lengths, channels, repeats, snntorch_max_length, seed, progress, device):
    peers = {"spikingjelly": spikingjelly_lif(), "snntorch": snntorch_leaky()}
    jobs = [(length, peer) for length in lengths for peer in peers]
    bar = tqdm(jobs, desc="bench neuron", unit="case", disable=not progress)
    rows = {length: {"L": length} for length in lengths}
    generator = torch.Generator().manual_seed(seed)
    for length, peer in bar:
        bar.set_postfix_str(f"L={length} vs {peer}")
        x = torch.randn(length, channels, generator=generator).to(device)
        weight = torch.randn(length, channels, generator=generator).to(device)
        row = rows[length]
        runner = peers[peer]
        skipped = runner is None or (peer == "snntorch" and length > snntorch_max_length)
        dyn, tau = (
            (SJ_DYNAMICS, SJ_TAU) if peer == "spikingjelly" else (SNNTORCH_DYNAMICS, SNNTORCH_TAU)
        )
        ours_s, our_spikes = time_forward_backward(ours(dyn, tau), x, weight, repeats)
        row["ours_s" if peer == "spikingjelly" else "ours_snntorch_config_s"] = ours_s
        if skipped:
            row.update(
                {f"{peer}_s": None, f"speedup_vs_{peer}": None, f"{peer}_spikes_equal": None}
            )
            continue
        peer_s, peer_spikes = time_forward_backward(runner, x, weight, repeats)
        row[f"{peer}_s"] = peer_s
        row[f"speedup_vs_{peer}"] = peer_s / ours_s
        row[f"{peer}_spikes_equal"] = bool(torch.equal(our_spikes, peer_spikes))
    result = []
    for row in rows.values():
        checks = [
            row[k]
            for k in ("spikingjelly_spikes_equal", "snntorch_spikes_equal")
            if row[k] is not None
        ]
        row["spikes_equal"] = all(checks) if checks else None
        result.append(row)
    return result


def format_table(rows: list[dict], channels: int, machine: str) -> str:
    def cell(value, fmt):
        return "—" if value is None else format(value, fmt)

    lines = [
        f"LIF forward+backward, {channels} channels, seconds (median); {machine}",
        f"{'L':>6} {'ours (SJ cfg)':>14} {'SpikingJelly':>13} {'speed-up':>9} "
        f"{'ours (snn cfg)':>15} {'snnTorch':>9} {'speed-up':>9} {'same spikes':>12}",
    ]
    for r in rows:
        lines.append(
            f"{r['L']:>6} {cell(r.get('ours_s'), '.4f'):>14} "
            f"{cell(r['spikingjelly_s'], '.4f'):>13} "
            f"{cell(r['speedup_vs_spikingjelly'], '.1f'):>9} "
            f"{cell(r.get('ours_snntorch_config_s'), '.4f'):>15} {cell(r['snntorch_s'], '.3f'):>9} "
            f"{cell(r['speedup_vs_snntorch'], '.1f'):>9} {cell(r['spikes_equal'], ''):>12}"
        )
    return "\n".join(lines)
