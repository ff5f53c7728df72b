"""LIF forward+backward vs SpikingJelly and snnTorch: `python benchmarks/neuron.py [--json]`.

Same as `spikeforge bench neuron`; install the peers first with `make bench-peers`.
"""

import sys

from spikeforge.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["bench", "neuron", *sys.argv[1:]]))
