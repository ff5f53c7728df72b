"""Peak memory of one SpikingSSM training step against the sequence length L.

Each length runs in a fresh process so that one run's allocations never hide another's: on
a CPU the figure is the process's peak resident memory during the step (its high-water mark,
reset just before the step) less its resident memory when the step starts, after the model
and data are built; on a GPU, torch.cuda.max_memory_allocated of the step.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import torch
from tqdm import tqdm


def one_step_peak_mib(
    length: int, batch: int, d_model: int, n_layers: int, lif_mode: str, device: str
) -> float:
    """Run one forward + backward + optimizer step; return its peak memory in MiB."""
    from neurojoule.layers import set_lif_mode
    from neurojoule.models import build_model

    torch.manual_seed(0)
    model = build_model(
        "spiking-ssm", d_model=d_model, n_layers=n_layers, d_state=64, in_channels=1, num_classes=10
    ).to(device)
    set_lif_mode(model, lif_mode)
    optimizer = torch.optim.AdamW(model.parameters())
    x = torch.randn(batch, length, 1, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _resident_mib_after_resetting_the_peak()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    if device.startswith("cuda"):
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    return _peak_mib() - base


def _resident_mib_after_resetting_the_peak() -> float:
    """Reset the high-water mark of resident memory (Linux: clear_refs 5) and return the
    resident memory now. Without /proc, the peak so far stands in (it may hide the step's)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _proc_status_mib("VmRSS")
    except OSError:
        return _peak_mib()


def _peak_mib() -> float:
    try:
        return _proc_status_mib("VmHWM")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _proc_status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024  # kB
    raise OSError(f"no {field} in /proc/self/status")


def run(
    lengths=(1024, 2048, 4096, 8192, 16384),
    batch: int = 8,
    d_model: int = 64,
    n_layers: int = 2,
    lif_mode: str = "bptt",
    device: str = "cpu",
    progress: bool = True,
) -> list[dict]:
    rows = []
    for length in tqdm(lengths, desc="bench memory", unit="L", disable=not progress):
        args = [length, batch, d_model, n_layers, lif_mode, device]
        code = (
            "import sys, torch; torch.set_num_threads(2); "
            "from neurojoule.bench.memory import one_step_peak_mib; "
            f"print(one_step_peak_mib(*{args!r}))"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"memory benchmark at L={length} failed: {done.stderr[-2000:]}")
        peak = float(done.stdout.strip().splitlines()[-1])
        rows.append(
            {
                "L": length,
                "peak_mib": peak,
                "batch": batch,
                "d_model": d_model,
                "n_layers": n_layers,
                "lif_mode": lif_mode,
                "device": device,
            }
        )
    for row in rows:
        row["mib_per_1k_steps"] = row["peak_mib"] / (row["L"] / 1024)
    return rows


def format_table(rows: list[dict], machine: str) -> str:
    first = rows[0] if rows else {}
    lines = [
        f"peak memory of one training step: SpikingSSM, {first.get('n_layers')} layers x "
        f"{first.get('d_model')} channels, batch {first.get('batch')}, "
        f"{first.get('lif_mode')} LIF; {machine}",
        f"{'L':>6} {'peak MiB':>10} {'MiB per 1K steps':>17}",
    ]
    for r in rows:
        lines.append(f"{r['L']:>6} {r['peak_mib']:>10.1f} {r['mib_per_1k_steps']:>17.1f}")
    return "\n".join(lines)
