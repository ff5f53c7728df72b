"""Training-time image augmentation in plain torch, on [C, H, W] tensors.

`random_crop` and `random_flip` draw from the torch.Generator they are given (the global RNG
when None). `Augmented` wraps a dataset (in practice the training split only, so validation
and test images stay as they are) and applies a transform to every input.

Where the randomness comes from: `Augmented` keeps its own torch.Generator, seeded from its
`seed` and, inside a DataLoader worker, from that worker's seed as well. So:
- the draws never touch the global RNG (changing a model's initialisation or dropout does
  not change the augmentations, nor the reverse);
- across epochs they differ: in the main process and in persistent workers the generator
  simply advances; non-persistent workers are started anew each epoch with a fresh worker
  seed (drawn by the DataLoader from its own generator, or from the global RNG that
  Lightning's seed_everything seeds);
- across workers they differ, since each worker has its own worker seed; across
  distributed ranks too, the rank being mixed in;
- the same seeds give the same images, run after run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def random_crop(
    image: torch.Tensor,
    padding: int,
    generator: torch.Generator | None = None,
    fill: float | torch.Tensor = 0.0,
) -> torch.Tensor:
    """Pad `image` [C, H, W] by `padding` on each side with `fill` (0: zeros; or one value per
    channel, [C, 1, 1]), then cut back to [C, H, W] at an offset drawn uniformly from
    {0, ..., 2 * padding} along each axis (rows first)."""
    _check_image(image)
    if not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be an int >= 0, got {padding!r}")
    if padding == 0:
        return image
    channels, height, width = image.shape
    padded = image.new_empty(channels, height + 2 * padding, width + 2 * padding)
    padded[:] = torch.as_tensor(fill, dtype=image.dtype, device=image.device)
    padded[:, padding : padding + height, padding : padding + width] = image
    top, left = torch.randint(0, 2 * padding + 1, (2,), generator=generator).tolist()
    return padded[:, top : top + height, left : left + width]


def random_flip(image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """`image` [C, H, W] mirrored left to right with probability 0.5, else unchanged."""
    _check_image(image)
    if torch.rand((), generator=generator) < 0.5:
        return image.flip(-1)
    return image


def _check_image(image: torch.Tensor) -> None:
    if not isinstance(image, torch.Tensor) or image.dim() != 3:
        shape = list(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"expected an image tensor [C, H, W], got {shape}")


@dataclasses.dataclass(frozen=True)
class ImageAugmentation:
    """A random crop after padding by `crop_padding` with `fill`, then (if `flip`) a random
    horizontal flip; a plain object so that DataLoader workers can pickle it."""

    crop_padding: int = 0
    flip: bool = False
    fill: float | tuple[float, ...] = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.crop_padding, int) or self.crop_padding < 0:
            raise ValueError(f"crop_padding must be an int >= 0, got {self.crop_padding!r}")

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        fill = torch.as_tensor(self.fill, dtype=image.dtype).reshape(-1, 1, 1)
        image = random_crop(image, self.crop_padding, generator, fill)
        return random_flip(image, generator) if self.flip else image


class Augmented(Dataset):
    """(transform(input, generator), label) for each (input, label) of `dataset`.

    The generator is the wrapper's own, seeded from `seed`, the DataLoader worker's seed and
    the distributed rank (see the module's docstring for why this varies across epochs and
    workers yet stays reproducible).
    """

    def __init__(self, dataset: Dataset, transform: Transform, seed: int = 0) -> None:
        if not callable(transform):
            raise ValueError(f"transform must be callable, got {type(transform).__name__}")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        self.dataset = dataset
        self.transform = transform
        self.seed = seed
        self._generator: torch.Generator | None = None
        self._stream: tuple[int, int | None] | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        inputs, label = self.dataset[index]
        return self.transform(inputs, self._current_generator()), label

    def _current_generator(self) -> torch.Generator:
        stream = (_rank(), _worker_seed())
        if self._generator is None or stream != self._stream:
            entropy = [self.seed, stream[0]] + ([] if stream[1] is None else [stream[1]])
            seed = int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])
            self._generator = torch.Generator().manual_seed(seed)
            self._stream = stream
        return self._generator

    def __getstate__(self) -> dict:
        # a copy sent to a worker starts its own stream there
        return {**self.__dict__, "_generator": None, "_stream": None}


def _worker_seed() -> int | None:
    info = get_worker_info()
    return None if info is None else info.seed


def _rank() -> int:
    distributed = torch.distributed
    if distributed.is_available() and distributed.is_initialized():
        return distributed.get_rank()
    return 0
