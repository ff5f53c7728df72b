"""Input checks at a network's boundary: shapes, empty batches and non-finite values, each a
one-line ValueError that says what was expected and what came."""

from __future__ import annotations

import torch


def check_finite(x: torch.Tensor, name: str) -> None:
    """A ValueError naming `name` and the count unless every value of x is finite. One
    isfinite().all() when the input is clean; the count only on the way to the error."""
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(
            f"{name} has {bad} non-finite value(s) (NaN or +-Inf) among {x.numel()}; "
            "expected finite input"
        )


def check_images(x: torch.Tensor, channels: int, size: int, model: str) -> None:
    """Float images [B, channels, size, size] with B >= 1, all finite."""
    expected = (channels, size, size)
    if x.dim() != 4 or tuple(x.shape[1:]) != expected or not x.is_floating_point():
        raise ValueError(
            f"{model} expects float images [batch, {channels}, {size}, {size}], "
            f"got {x.dtype} of shape {tuple(x.shape)}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{model} got a batch of 0 images; expected at least 1")
    check_finite(x, f"{model} input")


def check_sequence_batch(x: torch.Tensor, channels: int, layer: str) -> None:
    """A ValueError unless x is a float tensor [B, H, L] with H = `channels`, B >= 1, L >= 1."""
    if x.dim() != 3 or x.shape[1] != channels or not x.is_floating_point():
        raise ValueError(
            f"{layer} expects a float tensor [B, H, L] with H = d_model = {channels}, "
            f"got {x.dtype} of shape {tuple(x.shape)}"
        )
    if x.shape[0] == 0 or x.shape[2] == 0:
        raise ValueError(
            f"{layer} input has batch {x.shape[0]} and length {x.shape[2]}; expected at least "
            f"one sequence of at least one step, got shape {tuple(x.shape)}"
        )
