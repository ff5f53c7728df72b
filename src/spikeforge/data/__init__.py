"""Datasets: generators, loaders of real published files, encoders."""

from spikeforge.data.digits import load_digits_split

__all__ = ["load_digits_split"]
