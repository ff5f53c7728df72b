"""Forms of the same SDN function on this CPU, timed side by side in one run: torch's Conv1d
layers (the CUDA path) against matrix products on each step's input window (the CPU path),
and for inference the windows in one pass against the forward's cache-sized chunks.
`python benchmarks/sdn_forms.py [--json]`.

Cases: one training step of `neurojoule sdn train` (batch 64 x 1024 steps, forward + backward,
batch norm in training mode) at the published width (8 channels) and a wider one (32), and
inference of the folded network on the currents of a spiking layer (1024 neurons x 4096
steps), as in SpikingSSM's "sdn" mode.
"""

import json
import sys

import torch

from neurojoule.bench import machine_description
from neurojoule.neuron.sdn import SurrogateDynamicNetwork
from neurojoule.util.timing import median_seconds

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
    y = torch.randn(1024, 4096)
    case = "inference, 8 channels, [1024, 4096]"
    rows.append(_row(case, _inference, folded, y, 5))
    forms = ("windows, one pass", folded._forward_windows), ("windows, in chunks", folded)
    rows.append(_row(case, _inference, folded, y, 5, forms))
    return rows


def _row(case, make_step, net, y, repeats, forms=None):
    """Two forms of `net` (default: Conv1d, windows) timed on the same input, each through
    make_step(net, form, y); speedup = time of the first / time of the second."""
    forms = forms or (("Conv1d", net._forward_convolutions), ("windows", net._forward_windows))
    seconds = [median_seconds(make_step(net, form, y), repeats, CPU) for _, form in forms]
    return {
        "case": case,
        "baseline": forms[0][0],
        "baseline_s": seconds[0],
        "form": forms[1][0],
        "form_s": seconds[1],
        "speedup": seconds[0] / seconds[1],
    }


if __name__ == "__main__":
    torch.set_num_threads(2)
    rows = run()
    if "--json" in sys.argv:
        print(json.dumps(rows, indent=2))
    else:
        print(f"SDN forms; {machine_description()}")
        for r in rows:
            print(
                f"{r['case']:<40} {r['baseline']:>17} {r['baseline_s'] * 1e3:8.2f} ms  "
                f"{r['form']:>18} {r['form_s'] * 1e3:8.2f} ms  speed-up {r['speedup']:.2f}x"
            )
