import json

import torch

from neurojoule.bench import memory
from neurojoule.bench import sdn as bench_sdn
from neurojoule.cli import main
from neurojoule.neuron.sdn import exact_targets

SDN_KEYS = {"L", "bptt_s", "sltt_s", "sdn_s", "fastest_exact_s"}
SDN_KEYS |= {"speedup_sdn_vs_bptt", "speedup_sdn_vs_fastest_exact"}


def test_the_timed_layers_compute_the_exact_lif_spikes():
    torch.manual_seed(0)
    y = torch.randn(4, 8, 512)
    _, reference = exact_targets(y.reshape(-1, 512), bench_sdn.DECAY)  # the plain loop
    reference = reference.reshape(y.shape)
    for mode, backend in (("bptt", "torch"), ("sltt", "torch"), ("bptt", "auto")):
        assert torch.equal(bench_sdn.exact_layer(mode, backend)(y), reference)
    agreement = (bench_sdn.sdn_layer(torch.device("cpu"))(y) == reference).double().mean()
    assert agreement > 0.995


def test_bench_sdn_json_rows_keep_their_keys(capsys):
    argv = ["bench", "sdn", "--lengths", "64", "128", "--batch", "2", "--channels", "2"]
    assert main([*argv, "--repeats", "1", "--bptt-max-length", "64", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["L"] for row in rows] == [64, 128] and all(set(row) >= SDN_KEYS for row in rows)
    assert rows[1]["bptt_s"] is None and rows[1]["speedup_sdn_vs_bptt"] is None  # above the cap


def test_bench_sdn_rows_hold_each_method_time_and_the_ratios(monkeypatch):
    """With a timer that reports known seconds per method, the rows hold those seconds and
    the speed-ups are their ratios."""
    monkeypatch.setattr(bench_sdn, "exact_layer", lambda mode, backend: f"exact {mode} {backend}")
    monkeypatch.setattr(bench_sdn, "sdn_layer", lambda device: "sdn")
    monkeypatch.setattr(bench_sdn, "spikingjelly_layer", lambda: None)
    per_64_steps = {"exact bptt torch": 2.0, "exact sltt torch": 1.5, "sdn": 0.25}
    per_64_steps["exact bptt auto"] = 0.5
    monkeypatch.setattr(
        bench_sdn,
        "time_forward_backward",
        lambda fn, y, weight, repeats: (per_64_steps[fn] * y.shape[-1] / 64, None),
    )
    short, long = bench_sdn.run(lengths=(64, 128), batch=1, channels=1, bptt_max_length=64)
    assert (short["bptt_s"], short["sltt_s"], short["sdn_s"]) == (2.0, 1.5, 0.25)
    assert short["speedup_sdn_vs_bptt"] == 8.0 and short["speedup_sdn_vs_fastest_exact"] == 2.0
    assert long["bptt_s"] is None and long["spikingjelly_s"] is None
    assert long["fastest_exact_s"] == 1.0 and long["speedup_sdn_vs_fastest_exact"] == 2.0


def test_bench_memory_grows_by_at_least_the_saved_kernel_activations():
    """Each length runs in its own process. From L = 2048 to 8192 the step must hold at least
    one more [H, N/2, L] float32 tensor of the S4D kernel (its Vandermonde factors are saved
    for backward): a lower bound computed from the shapes alone."""
    d_model, d_state = 8, 64  # bench memory's d_state
    rows = memory.run(lengths=(2048, 8192), batch=1, d_model=d_model, n_layers=1, progress=False)
    assert [row["L"] for row in rows] == [2048, 8192]
    assert all(row["device"] == "cpu" for row in rows)
    growth_lower_bound = d_model * d_state // 2 * (8192 - 2048) * 4 / 2**20
    assert rows[1]["peak_mib"] - rows[0]["peak_mib"] >= growth_lower_bound
