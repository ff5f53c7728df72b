"""Speed benchmarks that time spikeforge and its peers side by side in one run."""

from __future__ import annotations

import os
import platform

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
