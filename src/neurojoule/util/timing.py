"""Wall-clock timing of a step, with the GPU synchronised around it."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def median_seconds(
    step: Callable[[], object], repeats: int, device: torch.device, warmup: int = 3
) -> float:
    """Median wall time of `step()` over `repeats` runs after `warmup` untimed ones (the first
    runs of a process also pay for compilation and for growing the heap), synchronising the
    GPU around each run."""
    times = []
    for i in range(warmup + repeats):
        synchronize(device)
        start = time.perf_counter()
        step()
        synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
