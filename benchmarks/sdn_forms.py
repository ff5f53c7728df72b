"""The SDN's two forms of the same function on this CPU, timed side by side in one run:
torch's Conv1d layers (the CUDA path) and matrix products on each step's input window (the
CPU path). `python benchmarks/sdn_forms.py [--json]`.

Cases: one training step of `spikeforge sdn train` (batch 64 x 1024 steps, forward + backward,
batch norm in training mode) at the published width (8 channels) and a wider one (32), and
inference of the folded network on the currents of a spiking layer (1024 neurons x 4096
steps), as in SpikingSSM's "sdn" mode.
"""

import json
import sys

import torch

from spikeforge.bench import machine_description, median_seconds
from spikeforge.neuron.sdn import SurrogateDynamicNetwork

CPU = torch.device("cpu")


def _training_step(net, form, y):
    def step():
        net.zero_grad()
        form(y).square().mean().backward()

    return step


def _inference(net, form, y):
    def step():
        with torch.no_grad():
            form(y)

    return step


def run(repeats: int = 10) -> list[dict]:
    rows = []
    for channels in (8, 32):
        net = SurrogateDynamicNetwork(0.5, channels).train()
        case = f"training step, {channels} channels, [64, 1024]"
        rows.append(_row(case, _training_step, net, torch.randn(64, 1024), repeats))
    folded = SurrogateDynamicNetwork(0.5).eval().folded()
    case = "inference, 8 channels, [1024, 4096]"
    rows.append(_row(case, _inference, folded, torch.randn(1024, 4096), 5))
    return rows


def _row(case, make_step, net, y, repeats):
    """Both forms of `net` timed on the same input, each through make_step(net, form, y)."""
    conv = median_seconds(make_step(net, net._forward_convolutions, y), repeats, CPU)
    windows = median_seconds(make_step(net, net._forward_windows, y), repeats, CPU)
    return {"case": case, "conv1d_s": conv, "windows_s": windows, "speedup": conv / windows}


if __name__ == "__main__":
    torch.set_num_threads(2)
    rows = run()
    if "--json" in sys.argv:
        print(json.dumps(rows, indent=2))
    else:
        print(f"SDN forms; {machine_description()}")
        for r in rows:
            print(
                f"{r['case']:<42} Conv1d {r['conv1d_s'] * 1e3:8.2f} ms  windows "
                f"{r['windows_s'] * 1e3:8.2f} ms  speed-up {r['speedup']:.2f}x"
            )
