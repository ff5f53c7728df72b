"""A task's splits as configured, and the loaders that feed them to training and evaluation.

The training loader's order is a function of (seed, epoch) alone and it can start partway
through an epoch, so a run resumed from a mid-epoch checkpoint sees exactly the batches the
uninterrupted run would have seen next. Lightning saves and restores its position (the
loader has `state_dict` / `load_state_dict`).

In a data-parallel run of R processes, rank r takes every R-th index of the same order,
starting at r, so step k of the R ranks together trains on the samples that step k of one
process with an R times larger batch would. The order is padded with its first indices to a
multiple of R, so that every rank runs the same number of steps. Evaluation loaders are not
split: every rank evaluates the whole split, and the ranks' metrics agree.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from neurojoule.data import classification_task, is_lm_task, lm_task
from neurojoule.data.tasks import TaskInfo
from neurojoule.train.config import TrainConfig


def make_splits(config: TrainConfig) -> tuple[Dataset, Dataset, Dataset, TaskInfo]:
    """The task's splits (a language-modelling task's windows too), limited as configured."""
    task = lm_task if is_lm_task(config.task) else classification_task
    train, val, test, info = task(config.task, config.task_root, **config.task_options)
    train = _limit(train, config.limit_train_samples, config.seed)
    val = _limit(val, config.limit_eval_samples, config.seed + 1)
    test = _limit(test, config.limit_eval_samples, config.seed + 2)
    return train, val, test, info


def _limit(dataset: Dataset, limit: int | None, seed: int) -> Dataset:
    if limit is None or limit >= len(dataset):
        return dataset
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    return Subset(dataset, order[:limit].tolist())


class EpochOrder(Sampler[int]):
    """Shuffled sample indices: epoch e's order is drawn from a generator seeded with
    (seed, e) alone, and an iteration can start where an interrupted run stopped. With
    `replicas` > 1, this process's share of it (see the module docstring); its rank is read
    from torch.distributed when an iteration starts."""

    def __init__(self, size: int, seed: int, replicas: int = 1):
        self.size, self.seed, self.replicas = size, seed, replicas
        self.epoch = 0
        self.resume_at: tuple[int, int] | None = None  # (epoch, samples already trained on)
        self.done = 0  # indices handed out in the current iteration, skipped ones included

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning before every training epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.size // self.replicas)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        if self.replicas > 1:
            padded = order + order[: len(self) * self.replicas - self.size]
            order = padded[self._rank() :: self.replicas]
        start = 0
        if self.resume_at is not None and self.resume_at[0] == self.epoch:
            start = self.resume_at[1]
        self.resume_at = None
        self.done = start
        for index in order[start:]:
            self.done += 1
            yield index

    def _rank(self) -> int:
        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        if world != self.replicas:
            raise ValueError(
                f"the training order was split for {self.replicas} processes, but "
                f"{world} run; set devices x num_nodes to the processes launched"
            )
        return dist.get_rank()


class ResumableLoader(DataLoader):
    """A DataLoader over EpochOrder whose position Lightning keeps in its checkpoints. The
    batch sampler draws a whole batch of indices at a time, so between batches the count of
    drawn indices is the count of samples trained on."""

    def state_dict(self) -> dict:
        return {"epoch": self.sampler.epoch, "samples_done": self.sampler.done}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.resume_at = (state["epoch"], state["samples_done"])


# Both loaders get a generator of their own: a DataLoader without one draws a number from the
# global generator whenever an iteration starts, which would shift every later dropout mask
# and augmentation of a resumed run.
def training_loader(
    dataset: Dataset, batch_size: int, seed: int, replicas: int = 1
) -> ResumableLoader:
    order = EpochOrder(len(dataset), seed, replicas)
    return ResumableLoader(dataset, batch_size, sampler=order, generator=torch.Generator())


def evaluation_loader(dataset: Dataset, batch_size: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, generator=torch.Generator())
