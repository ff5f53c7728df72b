"""How much of the SDN's miss is the window, and how much the network's fit?
`python benchmarks/sdn_window_oracle.py [--json]`.

The SDN predicts mem[t] from the k inputs y[t-k] ... y[t-1] alone. The window oracle runs the
exact hard-reset LIF over that same window from rest (u = 0 at t-k) and predicts with its
decayed after-reset potential: what a network could do with the window if it modelled the
LIF perfectly and ignored everything older. Both are scored by spike agreement with the exact
LIF over the whole sequence, on the same inputs, beside the shipped SDN.
"""

import json
import sys

import torch

from neurojoule.neuron.lif_core import lif_trace
from neurojoule.neuron.sdn import (
    SHIPPED_DECAYS,
    causal_windows,
    load_sdn,
    sdn_lif,
    spike_agreement,
)

INPUTS = {"N(0,1)": (1.0, 0.0), "std 0.3, mean +0.5": (0.3, 0.5)}
WINDOWS = (8, 12, 16)


class WindowOracle(torch.nn.Module):
    """decay * u[t-1] of the exact LIF run over y[t-k .. t-1] from rest, for every t; y [N, L].
    A module with `decay`, like the SDN, so that `spike_agreement` scores both alike."""

    def __init__(self, decay: float, k: int):
        super().__init__()
        self.decay, self.k = decay, k

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        spikes, h = lif_trace(causal_windows(y, self.k), sdn_lif(self.decay), time_dim=-1)
        last_u = h[:, -1] * (1 - spikes[:, -1])  # hard reset to 0 after a spike
        return (self.decay * last_u).reshape(y.shape)


def run(sequences: int = 500, length: int = 1024, seed: int = 0) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for name, (std, mean) in INPUTS.items():
        y = torch.randn(sequences, length, generator=generator) * std + mean
        for decay in SHIPPED_DECAYS:
            row = {"inputs": name, "decay": decay, "sdn": spike_agreement(load_sdn(decay), y)[0]}
            for k in WINDOWS:
                row[f"oracle_k{k}"] = spike_agreement(WindowOracle(decay, k), y)[0]
            rows.append(row)
    return rows


def main() -> None:
    torch.set_num_threads(2)
    rows = run()
    if "--json" in sys.argv:
        print(json.dumps(rows, indent=1))
        return
    print("spike agreement with the exact LIF (%): shipped SDN vs the exact LIF over a window")
    print(
        f"{'inputs':<20} {'decay':>6} {'SDN':>8}" + "".join(f" {'k=' + str(k):>8}" for k in WINDOWS)
    )
    for row in rows:
        cells = [row["sdn"]] + [row[f"oracle_k{k}"] for k in WINDOWS]
        print(
            f"{row['inputs']:<20} {row['decay']:>6g}" + "".join(f" {100 * c:>8.3f}" for c in cells)
        )


if __name__ == "__main__":
    main()
