"""CUDA check of the Triton LIF, run where a GPU is lent: exactness, then speed and memory.

`python benchmarks/gpu_triton_check.py OUT.json` needs a CUDA GPU and triton
(`pip install 'neurojoule[gpu]'`); it prints one JSON line per check and writes them all to
OUT.json.

1. Exactness on the GPU: the Triton backend against the torch loop (`backend="torch"`, the
   per-step specification) on the same device, for both decay forms x hard/soft reset x
   detach_reset x BPTT/SLTT in float32 (and the four decay/reset pairs in float64):
   spikes and final state must be identical, gradients (x, state, leak, threshold) are
   reported as their largest absolute difference. Then against the CPU numba kernel (spikes).
2. Speed: forward + backward of [L, 2048] at L = 1K, 4K, 16K, medians of timed repeats after
   warm-ups, the Triton LIF against SpikingJelly's multi-step LIFNode on CUDA (whichever
   implementation SpikingJelly selects, recorded) in the configuration of `bench neuron`:
   input decay tau = 2, hard reset to 0, sigmoid(alpha=4). Spikes compared element for element,
   and the peak memory allocated by each.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from neurojoule.bench.neuron import SJ_DYNAMICS, spikingjelly_lif
from neurojoule.neuron import LIFParameters, lif

LENGTHS = (1024, 4096, 16384)
CHANNELS = 2048


def _grads(spikes, state, leaves):
    weight = torch.linspace(-1, 1, spikes.numel(), dtype=spikes.dtype, device=spikes.device)
    loss = (spikes * weight.reshape(spikes.shape)).sum() + (state * 0.3).sum()
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    return [torch.zeros_like(v) if g is None else g for g, v in zip(grads, leaves, strict=True)]


def _case(form, dtype, steps=300, shape=(4, 1000), seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(steps, *shape, generator=generator, dtype=dtype) * 0.8 + 0.4
    u0 = torch.rand(shape, generator=generator, dtype=dtype) * 0.5
    rand = torch.rand(shape[-1], generator=generator, dtype=dtype)
    leak = rand * 0.6 + 0.1 if form == "multiplicative" else rand * 2 + 1.5
    vth = torch.rand(shape[-1], generator=generator, dtype=dtype) * 0.8 + 0.6
    return x, u0, leak, vth


def _run(tensors, form, settings, backend, device):
    x, u0, leak, vth = (t.detach().to(device).requires_grad_() for t in tensors)
    leaks = {"decay": leak} if form == "multiplicative" else {"tau": leak}
    params = LIFParameters(**leaks, v_threshold=vth, **settings)
    spikes, state = lif(x, params, time_dim=0, state=u0, backend=backend)
    grads = _grads(spikes, state, (x, u0, leak, vth))
    return spikes.detach(), state.detach(), grads


def exactness() -> dict:
    cases = []
    combos = itertools.product(
        ["multiplicative", "input"], ["hard", "soft"], [False, True], [False, True]
    )
    for form, reset, detach_reset, sltt in combos:
        for dtype in (torch.float32, torch.float64):
            if dtype == torch.float64 and (detach_reset or sltt):
                continue
            settings = dict(
                reset=reset,
                v_reset=-0.2 if detach_reset else 0.0,
                detach_reset=detach_reset,
                detach_state=sltt,
                surrogate="triangle" if reset == "hard" else "sigmoid(alpha=4)",
            )
            tensors = _case(form, dtype)
            s_t, u_t, g_t = _run(tensors, form, settings, "triton", "cuda")
            s_l, u_l, g_l = _run(tensors, form, settings, "torch", "cuda")
            s_c, _, _ = _run(tensors, form, settings, "numba", "cpu")
            cases.append(
                {
                    "form": form,
                    "reset": reset,
                    "detach_reset": detach_reset,
                    "sltt": sltt,
                    "dtype": str(dtype).removeprefix("torch."),
                    "rate": s_t.mean().item(),
                    "spikes_equal_torch_loop": bool(torch.equal(s_t, s_l)),
                    "state_equal_torch_loop": bool(torch.equal(u_t, u_l)),
                    "spikes_equal_cpu_numba": bool(torch.equal(s_t.cpu(), s_c)),
                    "max_grad_diff": {
                        name: (a - b).abs().max().item()
                        for name, a, b in zip(("x", "state", "leak", "vth"), g_t, g_l, strict=True)
                    },
                }
            )
    worst = max(max(c["max_grad_diff"].values()) for c in cases)
    return {
        "check": "triton vs torch loop on cuda (and cpu numba)",
        "all_spikes_equal": all(c["spikes_equal_torch_loop"] for c in cases),
        "all_states_equal": all(c["state_equal_torch_loop"] for c in cases),
        "all_spikes_equal_cpu": all(c["spikes_equal_cpu_numba"] for c in cases),
        "worst_grad_diff": worst,
        "cases": cases,
    }


def _spikingjelly():
    """SpikingJelly's multi-step LIFNode in the bench configuration (bench.neuron's), and the
    implementation it selects on this GPU; (None, reason) without it."""
    run = spikingjelly_lif()
    if run is None:
        return None, "spikingjelly is not installed"
    from spikingjelly.activation_based.functional.neuron import neuron_implementation

    try:
        chosen = neuron_implementation("lif", torch.device("cuda"))
    except Exception as error:  # a peer's diagnostics must not stop the check
        chosen = {"implementation": "unknown", "error": repr(error)}
    return run, chosen


def _time(fn, x, weight, repeats=10, warmup=3):
    """Median seconds of forward + backward, the spikes, and the peak memory allocated."""
    out = {}

    def step():
        spikes = fn(x.detach().requires_grad_())
        (spikes * weight).sum().backward()
        out["spikes"] = spikes.detach()

    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() - base
    return statistics.median(times), out["spikes"], peak


def speed() -> dict:
    sj, sj_implementation = _spikingjelly()
    rows = []
    generator = torch.Generator(device="cuda").manual_seed(0)
    for length in LENGTHS:
        x = torch.randn(length, CHANNELS, device="cuda", generator=generator)
        weight = torch.randn(length, CHANNELS, device="cuda", generator=generator)
        ours_s, our_spikes, ours_peak = _time(
            lambda v: lif(v, SJ_DYNAMICS, time_dim=0, backend="triton")[0], x, weight
        )
        row = {"L": length, "ours_s": ours_s, "ours_peak_bytes": ours_peak}
        if sj is not None:
            sj_s, sj_spikes, sj_peak = _time(sj, x, weight)
            row |= {
                "spikingjelly_s": sj_s,
                "spikingjelly_peak_bytes": sj_peak,
                "speedup_vs_spikingjelly": sj_s / ours_s,
                "spikes_equal": bool(torch.equal(our_spikes, sj_spikes)),
                "spikes_disagreement": (our_spikes != sj_spikes).float().mean().item(),
            }
        rows.append(row)
    return {
        "check": f"LIF forward+backward [L, {CHANNELS}], triton vs spikingjelly on cuda",
        "spikingjelly": sj_implementation,
        "rows": rows,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="JSON file to write")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("gpu_triton_check: needs a CUDA GPU, and torch sees none")
    if importlib.util.find_spec("triton") is None:
        sys.exit("gpu_triton_check: needs triton: pip install 'neurojoule[gpu]'")
    import triton

    torch.manual_seed(0)
    results = [
        {
            "device": torch.cuda.get_device_name(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "triton": triton.__version__,
        }
    ]
    print(json.dumps(results[0]), flush=True)
    for check in (exactness, speed):
        start = time.perf_counter()
        result = check() | {"seconds": round(time.perf_counter() - start, 1)}
        results.append(result)
        args.out.write_text(json.dumps(results, indent=2))  # what is done so far survives
        print(json.dumps({k: v for k, v in result.items() if k != "cases"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
