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
    _, reference = exact_targets(y.reshape(-1, 512), bench_sdn.TAU)  # the plain loop
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
    first, second = rows
    assert first["speedup_sdn_vs_bptt"] == first["bptt_s"] / first["sdn_s"]
    assert second["bptt_s"] is None and second["speedup_sdn_vs_bptt"] is None  # above the cap
    ratio = second["fastest_exact_s"] / second["sdn_s"]
    assert second["speedup_sdn_vs_fastest_exact"] == ratio


def test_bench_memory_runs_each_length_in_its_own_process():
    rows = memory.run(lengths=(64, 256), batch=1, d_model=4, n_layers=1, progress=False)
    assert [row["L"] for row in rows] == [64, 256]
    assert all(row["peak_mib"] >= 0 and row["device"] == "cpu" for row in rows)
