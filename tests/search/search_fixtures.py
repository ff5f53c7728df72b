"""Tiny searches for the search tests: a mixed space (choices, an integer and a real gene)
around a few-channel Spikformer, a supernet with random weights, subnets extracted from it
(no batch-norm recalibration) and a few random 16x16 images as validation batches (scaled so
that the random weights spike)."""

from __future__ import annotations

import signal
import time

import torch

from neurojoule.models.elastic import ElasticModel
from neurojoule.search.evaluator import Evaluator
from neurojoule.search.objectives import Objectives
from neurojoule.search.space import parse_space

IMAGE = 16


def tiny_spikformer_space(v_threshold, tau, steps=None) -> dict:
    """The data of a Spikformer space of tiny sizes (dim 8 or 16, 1-2 blocks of 1-2 heads,
    MLP ratio 1 or 2) with the neuron genes given, and T (default: 1 or 2), each a list of
    choices or a range spec."""
    return {
        "model": "spikformer",
        "shared": {"embed_dim": [8, 16], "steps": [1, 2] if steps is None else steps},
        "depth": [1, 2],
        "per_block": {
            "heads": [1, 2],
            "mlp_ratio": [1.0, 2.0],
            "v_threshold": v_threshold,
            "tau": tau,
        },
    }


TINY_SPACE = tiny_spikformer_space({"real": [0.3, 1.5]}, [1.25, 2.0], steps={"int": [1, 3]})


def tiny_space():
    return parse_space(TINY_SPACE)


def tiny_supernet(space, seed: int = 0) -> ElasticModel:
    torch.manual_seed(seed)
    return ElasticModel(space.model, {**space.supernet_options(), "image_size": IMAGE})


def tiny_batches(count: int = 2, size: int = 8, seed: int = 0) -> list:
    generator = torch.Generator().manual_seed(seed)
    return [
        (
            3 * torch.randn(size, 1, IMAGE, IMAGE, generator=generator),
            torch.randint(0, 10, (size,), generator=generator),
        )
        for _ in range(count)
    ]


class Provider:
    """Subnets extracted from the supernet; counts its calls and can sleep in each."""

    def __init__(self, elastic: ElasticModel, delay: float = 0.0):
        self.elastic, self.delay, self.calls = elastic, delay, []

    def __call__(self, subnet: dict) -> torch.nn.Module:
        self.calls.append(subnet)
        if self.delay:
            time.sleep(self.delay)
        return self.elastic.extract(subnet).eval()


def tiny_evaluator(delay: float = 0.0, seed: int = 0) -> Evaluator:
    space = tiny_space()
    return Evaluator(space, Provider(tiny_supernet(space, seed), delay), tiny_batches(seed=seed))


class FormulaEvaluator(Evaluator):
    """The evaluator with objectives computed from the subnet by a formula instead of measured
    on a model (cache, sharding and state as in Evaluator): for algorithm and runner tests
    that need many subnets in no time. `delay` seconds are slept per subnet measured."""

    def __init__(self, space, delay: float = 0.0):
        super().__init__(space, provider=None, batches=tiny_batches(count=1, size=2))
        self.delay = delay

    def measure(self, subnet):
        if self.delay:
            time.sleep(self.delay)
        size = subnet["embed_dim"] * sum(2 * r for r in subnet["mlp_ratio"]) * subnet["depth"]
        thresholds = sum(abs(v - 0.9) for v in subnet["v_threshold"])
        accuracy = 1 - 1 / (1 + size / 50) - 0.05 * thresholds - 0.02 * subnet["tau"][0]
        energy = size * subnet["steps"] / (1 + sum(subnet["heads"]))
        return Objectives(accuracy, float(energy), int(size), subnet["steps"], 2, 0.1)


def kill_when(process, ready, seconds: float = 300) -> None:
    """SIGKILL `process` as soon as `ready()` holds; fails if the process ends first or
    `ready()` does not hold within `seconds`."""
    deadline = time.monotonic() + seconds
    while not ready():
        assert process.poll() is None, "the run ended before the kill point"
        assert time.monotonic() < deadline, "the kill point never came"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
