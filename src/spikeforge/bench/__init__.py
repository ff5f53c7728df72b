"""Speed benchmarks that time spikeforge and its peers side by side in one run."""

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


def time_forward_backward(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, weight: torch.Tensor, repeats: int
) -> tuple[float, torch.Tensor]:
    """Median seconds of spikes = fn(x); (spikes * weight).sum().backward(), after a warm-up."""
    times = []
    for i in range(repeats + 1):
        xg = x.detach().requires_grad_()
        _synchronize(x)
        start = time.perf_counter()
        spikes = fn(xg)
        (spikes * weight).sum().backward()
        _synchronize(x)
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times), spikes.detach()


def _synchronize(x: torch.Tensor) -> None:
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
