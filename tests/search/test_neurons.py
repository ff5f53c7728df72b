"""Neuron parameters evolved on a trained network: scaling reaches every neuron of the layers
named (spikes equal a model built with those parameters), the decay forms scale their time
constant, a setting survives the checkpoint round trip, CMA-ES finds the known optimum when
accuracy is free, a killed search resumes to the uninterrupted result, and the parameters a
model lacks are one-line errors."""

import json
import math
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch

from neurojoule.cli import main
from neurojoule.models.registry import build_model
from neurojoule.neuron.lif_layer import LIF, lif_layers, scale_neurons
from neurojoule.search.neurons import GRID, NeuronGenome, NeuronSearch, with_setting
from neurojoule.train.checkpoints import load_checkpoint

torch.set_num_threads(2)


def _spikes(model, x) -> list[torch.Tensor]:
    recorded = []
    hooks = [
        layer.register_forward_hook(lambda _m, _i, out: recorded.append(out.clone()))
        for layer in lif_layers(model).values()
    ]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return recorded


def test_scaling_every_layer_equals_a_model_built_with_those_parameters():
    torch.manual_seed(0)
    trained = build_model("spiking-mlp", image_size=8).eval()
    rebuilt = build_model("spiking-mlp", image_size=8, v_threshold=1.5, tau=3.0).eval()
    rebuilt.load_state_dict(trained.state_dict())
    scales = dict.fromkeys(lif_layers(trained), {"threshold": 1.5, "time": 1.5})
    scale_neurons(trained, scales)
    x = torch.randn(4, 1, 8, 8) * 3
    got, expected = _spikes(trained, x), _spikes(rebuilt, x)
    assert len(got) == len(expected) == len(scales)
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
    assert any(a.sum() > 0 for a in got)


def test_one_named_layer_changes_and_no_other():
    torch.manual_seed(0)
    model = build_model("dense-snn", hidden=(12, 8), steps=3)  # learned per-neuron thresholds
    before = {name: layer.v_threshold.detach().clone() for name, layer in lif_layers(model).items()}
    first, second = lif_layers(model)
    scale_neurons(model, {first: {"threshold": 2.0, "time": 2.0}})
    assert torch.allclose(lif_layers(model)[first].v_threshold, 2 * before[first])
    assert lif_layers(model)[first].tau == pytest.approx(4.0, rel=1e-5)  # tau 2 -> 4
    assert torch.equal(lif_layers(model)[second].v_threshold, before[second])
    assert lif_layers(model)[second].tau == 2.0


def test_multiplicative_decay_scales_its_time_constant():
    layer = LIF(time_dim=0, decay=0.5)
    scale_neurons(torch.nn.Sequential(layer), {"0": {"time": 3.0}})
    tau = -1 / math.log(0.5)  # decay = exp(-1/tau)
    assert layer.decay == pytest.approx(math.exp(-1 / (3 * tau)))


@pytest.mark.parametrize(
    "scales, message",
    [
        ({"nope": {"threshold": 2.0}}, "no LIF layer named 'nope'"),
        ({"0": {"voltage": 2.0}}, "unknown neuron scales"),
        ({"0": {"threshold": 0.0}}, "> 0"),
        ({"0": {"time": float("inf")}}, "finite"),
    ],
)
def test_bad_scales_are_one_line_errors(scales, message):
    with pytest.raises(ValueError, match=message) as error:
        scale_neurons(torch.nn.Sequential(LIF(time_dim=0, tau=2.0)), scales)
    assert "\n" not in str(error.value)


def test_a_shared_genome_gives_every_layer_the_same_factors():
    model = build_model("dense-snn", hidden=(16, 8, 4), steps=4)
    genome = NeuronGenome(model, ("threshold", "time", "steps"), shared=True)
    assert genome.dim == 3
    setting = genome.decode([math.log(1.5), math.log(0.5), math.log(2.0)])
    assert setting["steps"] == 8
    assert setting["scales"] == {
        name: {"threshold": 1.5, "time": 0.5} for name in ("features.1", "features.3", "features.5")
    }
    assert NeuronGenome(model, ("threshold", "time")).dim == 6


def test_a_model_without_the_parameter_asked_for_is_refused():
    with pytest.raises(ValueError, match="no direct-encoded time steps"):
        NeuronGenome(build_model("s4d", in_channels=1, num_classes=2), ("steps",))
    with pytest.raises(ValueError, match="no LIF layers"):
        NeuronGenome(build_model("s4d", in_channels=1, num_classes=2), ("threshold",))
    with pytest.raises(ValueError, match="genes must be some of"):
        NeuronSearch(genes=("threshold", "capacitance"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "run"
    argv = ["train", "dense-snn", "--task", "digits", "--out", str(out), "--quiet"]
    argv += ["--set", "model_options.hidden=[16]", "--set", "model_options.steps=3"]
    assert main([*argv, "--epochs", "2"]) == 0
    return out


def test_a_setting_survives_the_checkpoint_round_trip(trained, tmp_path, capsys):
    out = tmp_path / "search"
    argv = ["evolve", "neurons", str(trained), "--genes", "threshold,time,steps"]
    argv += ["--generations", "2", "--population", "4", "--val-limit", "100"]
    assert main([*argv, "--out", str(out), "--quiet", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    setting = result["best"]["setting"]
    _, _, base = load_checkpoint(trained)
    _, _, chosen = load_checkpoint(out / "chosen.ckpt")
    x = torch.randn(16, 1, 8, 8)
    expected = with_setting(base, setting)
    assert chosen.time_steps == expected.time_steps == setting["steps"]
    got, want = _spikes(chosen, x), _spikes(expected, x)
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))


def test_with_accuracy_free_cma_es_raises_every_threshold_toward_its_limit(
    trained, tmp_path, capsys
):
    """Energy falls as thresholds rise (fewer spikes, fewer synaptic operations): with any
    accuracy allowed the optimum is every threshold factor at its upper limit, 4."""
    out = tmp_path / "search"
    argv = ["evolve", "neurons", str(trained), "--genes", "threshold", "--quiet", "--json"]
    argv += ["--generations", "12", "--population", "8", "--val-limit", "100"]
    argv += ["--max-accuracy-drop", "99.9", "--sigma", "0.5", "--out", str(out)]
    assert main(argv) == 0
    best = json.loads(capsys.readouterr().out)["best"]
    factors = [scales["threshold"] for scales in best["setting"]["scales"].values()]
    assert min(factors) > 2.5, factors


@pytest.mark.parametrize("algorithm", ["cma-es", "nsga2"])
def test_a_killed_search_resumes_to_the_uninterrupted_result(trained, tmp_path, algorithm):
    def command(out):
        argv = [sys.executable, "-m", "neurojoule", "evolve", "neurons", str(trained)]
        argv += ["--algorithm", algorithm]
        argv += ["--generations", "8", "--population", "4", "--val-limit", "200", "--quiet"]
        return [*argv, "--out", str(out), "--json"]

    whole = subprocess.run(command(tmp_path / "whole"), capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr
    killed = tmp_path / "killed"
    process = subprocess.Popen(command(killed), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    state, generation, deadline = killed / "search.pkl", 0, time.monotonic() + 120
    while generation < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
        if state.is_file():
            generation = pickle.loads(state.read_bytes())["generation"]
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 3 <= generation < 8, f"not killed midway (generation {generation})"
    resumed = subprocess.run([*command(killed), "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    first, second = json.loads(whole.stdout), json.loads(resumed.stdout)
    for key in ("front", "best", "evaluated", "after"):
        assert _without_paths(first[key]) == _without_paths(second[key])


def _without_paths(value):
    if isinstance(value, dict):
        return {k: _without_paths(v) for k, v in value.items() if k != "checkpoint"}
    return value


@pytest.mark.parametrize("drop", ["nan", "-1", "100", "half"])
def test_a_bad_accuracy_drop_is_a_one_line_error(drop, capsys):
    with pytest.raises(SystemExit):
        main(["evolve", "neurons", "run", "--max-accuracy-drop", drop])
    err = capsys.readouterr().err
    assert "expected accuracy points in [0, 100)" in err and len(err.strip().splitlines()) == 1


def test_nsga2_chooses_factors_from_the_grid(trained, tmp_path, capsys):
    argv = ["evolve", "neurons", str(trained), "--algorithm", "nsga2", "--quiet", "--json"]
    argv += ["--generations", "3", "--population", "6", "--val-limit", "100"]
    assert main([*argv, "--out", str(tmp_path / "search")]) == 0
    result = json.loads(capsys.readouterr().out)
    factors = {
        factor
        for entry in result["front"]
        for scales in entry["setting"]["scales"].values()
        for factor in scales.values()
    }
    assert factors and factors <= set(GRID)
    assert result["algorithm"] == "nsga2" and result["evaluated"] > 6
