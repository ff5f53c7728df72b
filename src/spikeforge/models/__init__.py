"""Whole networks, one file a family."""

from spikeforge.models.dense import DenseSNN

__all__ = ["DenseSNN"]
