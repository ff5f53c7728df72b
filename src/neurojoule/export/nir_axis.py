"""Token mixing along one spatial axis (layers.mixer.AxisLinear) in NIR's terms: two Conv2d.

AxisLinear along axis 2 (H) of [C, H, W] computes y[c, g, w] = sum_s M[c, g, s] x[c, s, w] +
b[c, g], one K x K matrix per channel (K = H). NIR has neither a per-channel matrix product
nor a reshape, so an export writes it as two convolutions with K x K kernels, stride 1:
  fold:    [C, K, W] -> [C*K, 1, W'], output channel c*K + g holding position g of channel
           c: its kernel holds row g of M[c] in column K//2, zeros elsewhere; padding
           (0, K//2). For even K, W' = W + 1: the last column reads only zero padding (it
           holds the bias) and the unfold drops it.
  unfold:  [C*K, 1, W'] -> [C, K, W], one-hot weights (exact: each output is one input
           times 1 plus zeros): output (c, g, w) reads channel c*K + g at kernel cell
           (K - 1 - g, (K - 1)//2); padding (K - 1, (K - 1)//2).
Along axis 3 (W) the roles of the two spatial axes swap.

Why square kernels and no groups: the reference `nir` library (1.0.8) infers a Conv2d's
output size as if its kernel were square (weight.shape[2] for both sides), and its input
channels as weight.shape[1] (ignoring groups), so a file with grouped or non-square convs
fails nir.read's type check. These kernels are square and dense (zero across channels), so
the graph type-checks and runs anywhere; the importer here recognises them (fold_matrices,
is_unfold check every weight) and runs the matrix product and the reshape they compute.
"""

from __future__ import annotations

import numpy as np

AXIS_KEY = "neurojoule.axis_linear"  # metadata of a fold conv: the axis it mixes (2 or 3)
UNFOLD_KEY = "neurojoule.unfold"  # metadata of an unfold conv: the axis it restores


def _cells(axis: int, along, across):
    """Index (row, column) of kernel cells from indices along the mixed axis and across it."""
    return (along, across) if axis == 2 else (across, along)


def fold_kernel(matrices: np.ndarray, axis: int) -> tuple[np.ndarray, tuple, tuple]:
    """(weight [C*K, C, K, K], stride, padding) of the fold conv of matrices [C, K, K]."""
    channels, size, _ = matrices.shape
    weight = np.zeros((channels * size, channels, size, size), dtype=matrices.dtype)
    row = np.arange(channels * size)  # output channel c*K + g
    for s in range(size):
        weight[(row, row // size, *_cells(axis, s, size // 2))] = matrices[:, :, s].reshape(-1)
    return weight, (1, 1), _cells(axis, 0, size // 2)


def fold_matrices(weight: np.ndarray, stride, padding, axis: int) -> np.ndarray | None:
    """The matrices [C, K, K] of a fold conv, or None unless `weight` and its settings are
    exactly what fold_kernel writes (then the conv computes AxisLinear and nothing else)."""
    if weight.ndim != 4 or weight.shape[2] != weight.shape[3] or weight.shape[1] == 0:
        return None
    channels, size = weight.shape[1], weight.shape[2]
    if weight.shape[0] != channels * size:
        return None
    row = np.arange(channels * size)
    matrices = np.stack(
        [weight[(row, row // size, *_cells(axis, s, size // 2))] for s in range(size)], -1
    ).reshape(channels, size, size)
    expected, expected_stride, expected_padding = fold_kernel(matrices, axis)
    if tuple(stride) != expected_stride or tuple(padding) != expected_padding:
        return None
    return matrices if np.array_equal(expected, weight) else None


def unfold_kernel(channels: int, size: int, axis: int, dtype=np.float32):
    """(weight [C, C*K, K, K], stride, padding) of the conv from the folded layout back."""
    weight = np.zeros((channels, channels * size, size, size), dtype=dtype)
    column = np.arange(channels * size)  # input channel c*K + g
    position = column % size
    weight[(column // size, column, *_cells(axis, size - 1 - position, (size - 1) // 2))] = 1
    return weight, (1, 1), _cells(axis, size - 1, (size - 1) // 2)


def is_unfold(weight: np.ndarray, stride, padding, axis: int) -> bool:
    """Whether a conv is exactly the unfold of `axis` that unfold_kernel writes."""
    if weight.ndim != 4 or weight.shape[0] == 0 or weight.shape[2] != weight.shape[3]:
        return False
    channels, size = weight.shape[0], weight.shape[2]
    if weight.shape[1] != channels * size:
        return False
    expected, expected_stride, expected_padding = unfold_kernel(channels, size, axis)
    return (
        tuple(stride) == expected_stride
        and tuple(padding) == expected_padding
        and np.array_equal(expected, weight)
    )
