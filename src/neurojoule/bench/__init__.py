"""Speed benchmarks that time neurojoule and its peers side by side in one run."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable

import torch

from neurojoule.util.timing import median_seconds


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
    """Median seconds of spikes = fn(x); (spikes * weight).sum().backward(), after warm-ups."""
    result = {}

    def step():
        spikes = fn(x.detach().requires_grad_())
        (spikes * weight).sum().backward()
        result["spikes"] = spikes.detach()

    return median_seconds(step, repeats, x.device), result["spikes"]
