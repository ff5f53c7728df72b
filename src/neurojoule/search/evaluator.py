"""Evaluation of a population: each subnet once (a cache keyed by the decoded subnet), the
work shared over torch.distributed ranks.

The evaluator knows models only through a provider, a callable subnet -> nn.Module in eval
mode (for example a supernet's slices extracted with recalibrated batch norms), and measures
every model on the same validation batches. Under torchrun every rank runs the same search
with the same seed, so every rank asks for the same population; the subnets not in the cache
are split over the ranks (rank r takes every world-th one), each rank measures its share, and
the results are all-gathered, so that every rank ends each call with the same cache.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
from torch import nn

from neurojoule.search.objectives import Objectives, measure_objectives
from neurojoule.search.space import Space

Provider = Callable[[dict], nn.Module]


def subnet_key(subnet: Mapping) -> str:
    """The cache key of a subnet: its options as canonical JSON (tuples as lists)."""
    return json.dumps(_plain(subnet), sort_keys=True)


def _plain(value):
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):  # a numpy or torch scalar
        return value.item()
    return value


def plain_subnet(subnet: Mapping) -> dict:
    """A subnet with Python numbers and lists only (JSON-ready)."""
    return _plain(subnet)


class Evaluator:
    """Objectives of genomes of `space`, measured on `batches` of (inputs, labels) with the
    models `provider` gives, cached by subnet and shared over the torch.distributed ranks
    when a process group is initialised."""

    def __init__(
        self,
        space: Space,
        provider: Provider,
        batches: Iterable,
        table: str = "45nm",
        device: torch.device | str | None = None,
    ):
        self.space = space
        self.provider = provider
        self.batches = [tuple(batch) for batch in batches]  # the same data for every subnet
        if not self.batches or any(len(batch) != 2 for batch in self.batches):
            raise ValueError("expected at least one validation batch of (inputs, labels)")
        self.table = table
        self.device = None if device is None else torch.device(device)
        self.cache: dict[str, Objectives] = {}
        self.subnets: dict[str, dict] = {}
        self.hits = 0  # subnets asked for and found in the cache
        self.measured = 0  # subnets measured, on all ranks together
        self.measured_here = 0  # subnets measured by this rank

    @property
    def rank(self) -> int:
        return rank_and_world()[0]

    @property
    def world_size(self) -> int:
        return rank_and_world()[1]

    def objectives(self, genomes: Sequence[Mapping]) -> list[Objectives]:
        """The objectives of each genome (a collective call under torch.distributed)."""
        return self.evaluate_subnets([self.space.decode(g) for g in genomes])

    def evaluate_subnets(self, subnets: Sequence[Mapping]) -> list[Objectives]:
        keys = [subnet_key(s) for s in subnets]
        todo: dict[str, dict] = {}
        for key, subnet in zip(keys, subnets, strict=True):
            if key in self.cache:
                self.hits += 1
            elif key not in todo:
                todo[key] = dict(subnet)
            else:
                self.hits += 1  # asked twice in one call: measured once
        if todo:
            self._measure(todo)
        return [self.cache[key] for key in keys]

    def _measure(self, todo: dict[str, dict]) -> None:
        rank, world = rank_and_world()
        share = list(todo.items())[rank::world]
        gathered = gathered_shares(
            lambda: [(key, self.measure(subnet).to_dict()) for key, subnet in share]
        )
        for part in gathered:
            for key, values in part:
                self.cache[key] = Objectives.from_dict(values)
                self.subnets[key] = plain_subnet(todo[key])
        self.measured += len(todo)
        self.measured_here += len(share)

    def measure(self, subnet: Mapping) -> Objectives:
        """One subnet's objectives, measured now (no cache, no other rank)."""
        model = self.provider(dict(subnet))
        if not isinstance(model, nn.Module):
            raise ValueError(f"the model provider returned {type(model).__name__}, not a module")
        if self.device is not None:
            model = model.to(self.device)
        return measure_objectives(model.eval(), self.batches, self.table)[0]

    def state(self) -> dict:
        """The cache as JSON-ready data."""
        return {
            "cache": [
                {"subnet": self.subnets[key], "objectives": self.cache[key].to_dict()}
                for key in self.cache
            ]
        }

    def load_state(self, state: Mapping) -> None:
        for entry in state["cache"]:
            key = subnet_key(entry["subnet"])
            self.cache[key] = Objectives.from_dict(entry["objectives"])
            self.subnets[key] = plain_subnet(entry["subnet"])


def _dist():
    import torch.distributed as dist

    return dist


def _distributed() -> bool:
    dist = _dist()
    return dist.is_available() and dist.is_initialized()


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of ranks ((0, 1) outside torch.distributed)."""
    return (_dist().get_rank(), _dist().get_world_size()) if _distributed() else (0, 1)


def gathered_shares(measure_share: Callable[[], object]) -> list:
    """Every rank's result of `measure_share()`, in rank order (a collective call; alone, a
    list of one). An error on any rank is raised on every rank, naming the rank, so that no
    rank waits for a result that never comes."""
    rank, world = rank_and_world()
    try:
        share = ("ok", measure_share())
    except Exception as error:
        if world == 1:
            raise
        share = ("error", f"rank {rank} of {world} failed: {' '.join(str(error).split())}")
    gathered = [share]
    if world > 1:
        gathered = [None] * world
        _dist().all_gather_object(gathered, share)
    for status, value in gathered:
        if status == "error":
            raise ValueError(value)
    return [value for _, value in gathered]


def init_distributed() -> torch.device | None:
    """Under torchrun (WORLD_SIZE > 1 in the environment): join the process group (NCCL
    where CUDA is, one GPU per local rank; gloo on CPU) and return this rank's device. Alone:
    None, nothing initialised."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or _distributed():
        return None
    dist = _dist()
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
        return device
    dist.init_process_group("gloo")
    return torch.device("cpu")


def close_distributed() -> None:
    if _distributed():
        _dist().destroy_process_group()
