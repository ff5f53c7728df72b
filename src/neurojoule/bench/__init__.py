"""Speed benchmarks that time neurojoule and its peers side by side in one run."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable

import torch


def machine_description() -> str:
    """CPU model, logical cores and the thread count the benchmark ran with."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    threads = torch.get_num_threads()
    return f"{model}, {os.cpu_count()} logical cores, {threads} threads, torch {torch.__version__}"


def median_seconds(
    step: Callable[[], object], repeats: int, device: torch.device, warmup: int = 3
) -> float:
    """Median wall time of `step()` over `repeats` runs after `warmup` untimed ones (the first
    runs of a process also pay for compilation and for growing the heap), synchronising the
    GPU around each run."""
    times = []
    for i in range(warmup + repeats):
        _synchronize(device)
        start = time.perf_counter()
        step()
        _synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_forward_backward(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, weight: torch.Tensor, repeats: int
) -> tuple[float, torch.Tensor]:
    """Median seconds of spikes = fn(x); (spikes * weight).sum().backward(), after warm-ups."""
    result = {}

    def step():
        spikes = fn(x.detach().requires_grad_())
        (spikes * weight).sum().backward()
        result["spikes"] = spikes.detach()

    return median_seconds(step, repeats, x.device), result["spikes"]


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
