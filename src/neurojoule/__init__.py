"""neurojoule: energy-efficient spiking neural networks on PyTorch."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("neurojoule")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
