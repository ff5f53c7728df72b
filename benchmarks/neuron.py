"""LIF forward+backward vs SpikingJelly and snnTorch: `python benchmarks/neuron.py [--json]`.

Same as `neurojoule bench neuron`; install the peers first with `make bench-peers`.
"""

import sys

from neurojoule.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["bench", "neuron", *sys.argv[1:]]))
