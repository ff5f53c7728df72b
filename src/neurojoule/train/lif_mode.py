"""`lif_mode: auto`: which mode the spiking SSM layers train in, chosen once per run.

A CPU has a fixed default, the faster mode in every measurement made so far: the compiled
exact LIF ("bptt"). Timing does not enter the choice there: on a loaded CPU the parallel exact
kernel slows several times more than the SDN does, so a timed choice would flip with the load
of the machine (it did: a busy 2-core machine measured the SDN faster by more than 1.5x). A
CUDA GPU without triton has a fixed default too, the surrogate dynamic network ("sdn"): its
exact LIF is then a loop of small torch kernels, one launch per operation and step. With
triton installed (the `gpu` extra) the exact LIF on CUDA is one fused kernel
(neuron.triton_lif), and the GPU is timed like any device without a default: the modes are
timed in alternation and the SDN is chosen only when it is faster by a clear margin (MARGIN).
The choice and the rule that decided are written to lif_mode.json in the run folder, and a
resumed run continues in the recorded mode.
"""

from __future__ import annotations

import copy
import json
import statistics
from pathlib import Path

import torch

from neurojoule.layers import set_lif_mode, ssm_neurons
from neurojoule.neuron.lif_core import triton_available
from neurojoule.train.run_folder import RunFolder
from neurojoule.util.timing import median_seconds

DEFAULT_LIF_MODE = {"cpu": "bptt", "cuda": "sdn"}
TIMED_WITH_TRITON = ("cuda",)  # devices whose default gives way to timing where triton runs
MARGIN = 1.5  # elsewhere, the SDN must be this many times faster than the exact LIF
RECORD = "lif_mode.json"


def classification_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor):
    return torch.nn.functional.cross_entropy(model(x), y)


def choose_lif_mode(
    model: torch.nn.Module,
    batch,
    repeats: int = 5,
    loss_fn=classification_loss,
    processes: int = 1,
) -> dict | None:
    """Set the training mode of the model's spiking SSM layers (see the module docstring) and
    return the record: chosen mode, seconds per training step of each mode, device, rule.
    None for a model without spiking SSM layers. A run of several `processes` never times:
    each would time for itself and could choose otherwise, so it takes the device's fixed
    default (bptt where there is none)."""
    if not ssm_neurons(model):
        return None
    x, y = batch
    device = x.device.type
    default = default_lif_mode(device)
    if processes > 1:
        chosen, seconds = DEFAULT_LIF_MODE.get(device, "bptt"), None
        rule = f"the default on {device}, which every process of a data-parallel run takes"
    elif default is not None:
        chosen, seconds = default, None
        rule = f"the default on {device}: the faster mode in every measurement so far"
    else:
        seconds = _step_seconds(copy.deepcopy(model), x, y, repeats, loss_fn)
        faster = "sdn" in seconds and seconds["sdn"] * MARGIN < seconds["bptt"]
        chosen = "sdn" if faster else "bptt"
        rule = f"measured on {device}: " + (
            f"sdn {seconds['bptt'] / seconds['sdn']:.1f}x faster than bptt"
            if faster
            else f"sdn not {MARGIN:g}x faster than bptt"
        )
    set_lif_mode(model, chosen)
    return {"chosen": chosen, "rule": rule, "step_seconds": seconds, "device": str(x.device)}


def default_lif_mode(device: str) -> str | None:
    """The fixed mode of a device type, or None where the modes are timed."""
    if device in TIMED_WITH_TRITON and triton_available():
        return None
    return DEFAULT_LIF_MODE.get(device)


def _step_seconds(probe, x, y, repeats: int, loss_fn) -> dict[str, float]:
    """Median seconds of one training step in each available mode, the modes timed in turn
    (on a copy of the model, so its batch-norm statistics stay untouched)."""

    def step():
        loss_fn(probe, x, y).backward()

    modes = []
    for mode in ("bptt", "sdn"):
        try:
            set_lif_mode(probe, mode)
        except ValueError:  # no SDN shipped for this decay
            continue
        median_seconds(step, 1, x.device, warmup=2)
        modes.append(mode)
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(repeats):
        for mode in modes:
            set_lif_mode(probe, mode)
            times[mode].append(median_seconds(step, 1, x.device, warmup=0))
    return {mode: statistics.median(values) for mode, values in times.items()}


def choose_and_record(
    model, first_batch, folder: RunFolder, loss_fn, device: str, processes: int = 1
) -> dict | None:
    """Choose on `device` with the run's first batch; the folder's writer writes
    lif_mode.json."""
    model.to(device)
    batch = [t.to(device) for t in first_batch]
    choice = choose_lif_mode(model, batch, loss_fn=loss_fn, processes=processes)
    model.cpu()
    if choice and folder.writer:
        (folder.path / RECORD).write_text(json.dumps(choice, indent=2))
    return choice


def reapply_recorded(model, out: Path) -> dict | None:
    """A resumed `auto` run continues in the mode its first start chose."""
    record = out / RECORD
    if not record.is_file():
        return None
    choice = json.loads(record.read_text())
    set_lif_mode(model, choice["chosen"])
    return choice
