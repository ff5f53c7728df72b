"""Architecture search by short training (search.trained): spaces of SpikingSSM, the spiking
MLP and the dense SNN built from their model options, per-block threshold scales that reach
every neuron of their block, the learning-curve cut, and a search killed with SIGKILL that
resumes to the front of the uninterrupted one."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from search_fixtures import kill_when

from neurojoule.models import build_model
from neurojoule.neuron import lif_layers
from neurojoule.search.runner import reference_subnet
from neurojoule.search.space import load_space, parse_space
from neurojoule.search.trained import CandidateTrainer, TrainingBudget, block_layers
from neurojoule.train.checkpoints import read_checkpoint
from neurojoule.train.config import load_config
from neurojoule.train.fit import CurveCut, seed_everything, train
from neurojoule.train.module import build_model_for_task
from neurojoule.train.splits import make_splits

torch.set_num_threads(2)

# a dense SNN on the 8x8 digits: 1 or 2 hidden layers of 16 or 32 neurons, T 2 or 4
TINY = {
    "model": "dense-snn",
    "shared": {"steps": [2, 4], "tau": [2.0, 4.0]},
    "depth": [1, 2],
    "depth_option": None,
    "per_block": {"hidden": [16, 32], "threshold_scale": [0.5, 1.0, 2.0]},
}
DIGITS = ["lif_mode=bptt", "optim.batch_size=32", "model_options.steps=4"]


def _digits_config(*more: str):
    return load_config("digits", [*DIGITS, *more], model="dense-snn", task="digits")


def test_the_listops_space_maps_genes_to_the_ssm_options():
    space = load_space("ssm-listops-cpu")
    subnet = space.decode(space.sample(random.Random(3)))
    options = space.model_options(subnet)
    assert options["n_layers"] == subnet["depth"] and "depth" not in options
    assert "threshold_scale" not in options
    model = build_model("spiking-ssm", **options)
    assert len(lif_layers(model)) == subnet["depth"]
    assert model.config.d_model == subnet["d_model"]
    assert model.config.bidirectional is subnet["bidirectional"]
    listops = load_config("listops-cpu", [], model="spiking-ssm").model_options
    hand = reference_subnet(space, listops)
    assert hand == {
        "d_model": 64,
        "d_state": 4,
        "decay": 0.125,
        "bidirectional": True,
        "depth": 4,
        "threshold_scale": (1.0,) * 4,
    }


def test_the_mlp_space_holds_the_registry_model_with_four_stages():
    space = load_space("mlp-fmnist-cpu")
    assert reference_subnet(space) == {
        "dim": 24,
        "steps": 4,
        "spe": True,
        "mlp_ratio": 3.0,
        "depth": 4,
        "depths": (1, 1, 2, 1),
    }
    smallest = space.model_options(space.extreme(largest=False))
    assert smallest == {"dim": 12, "steps": 1, "spe": False, "mlp_ratio": 2.0, "depths": (1,) * 4}
    model = build_model("spiking-mlp", **smallest)
    assert [len(stage.blocks) for stage in model.stages] == [1, 1, 1, 1]


def test_without_a_depth_option_the_reference_depth_is_its_tuples_length():
    space = parse_space({**TINY, "per_block": {"hidden": [16, 128, 256]}, "shared": {}})
    assert reference_subnet(space) == {"depth": 2, "hidden": (256, 128)}
    assert reference_subnet(space, {"hidden": [16]}) == {"depth": 1, "hidden": (16,)}
    assert reference_subnet(space, {"hidden": [32]}) is None  # 32 is not a choice


def test_a_boolean_gene_takes_booleans_only():
    bad = {"model": "spiking-ssm", "depth": [2], "depth_option": "n_layers"}
    with pytest.raises(ValueError, match="bidirectional: expected a list of distinct true/false"):
        parse_space({**bad, "shared": {"bidirectional": [0, 1]}})
    with pytest.raises(ValueError, match="unknown shared genes \\['width'\\]: spiking-ssm takes"):
        parse_space({**bad, "shared": {"width": [1]}})
    with pytest.raises(ValueError, match="depth_option must name an integer option"):
        parse_space({**bad, "depth_option": "norm"})
    space = parse_space({**bad, "shared": {"bidirectional": [True, False]}})
    assert not space.shared["bidirectional"].contains(1)
    assert not space.is_elastic()


def test_threshold_scales_reach_every_neuron_of_their_block_only(tmp_path):
    space = parse_space(TINY)
    subnet = {"steps": 4, "tau": 2.0, "depth": 2, "hidden": (16, 32), "threshold_scale": (0.5, 2.0)}
    config = _digits_config("model_options.hidden=[16, 32]")
    trainer = CandidateTrainer(space, config, TrainingBudget(4), tmp_path)
    started = trainer._start(config, subnet, tmp_path / "run")
    scaled = read_checkpoint(started.init)["state_dict"]
    seed_everything(config.seed)  # the fresh model of the run, drawn as train() draws it
    plain = build_model_for_task(config, make_splits(config)[3])
    names = block_layers(plain, 2)
    assert names == [["features.1"], ["features.3"]]
    for (name,), scale in zip(names, (0.5, 2.0), strict=True):
        key = f"model.{name}.ln_vth"
        expected = lif_layers(plain)[name].ln_vth.detach() + torch.log(torch.tensor(scale))
        assert scaled[key].shape == expected.shape == (lif_layers(plain)[name].channels,)
        torch.testing.assert_close(scaled[key], expected)
    for name, value in plain.state_dict().items():
        if not name.endswith("ln_vth"):
            assert torch.equal(scaled[f"model.{name}"], value), name


def test_the_curve_cut_stops_at_half_the_budget_and_a_resume_stays_cut(tmp_path):
    config = _digits_config("optim.max_steps=8", "model_options.hidden=[16]")
    cut = CurveCut(4, threshold=1.01)  # no accuracy reaches it
    train(config, tmp_path / "run", progress=False, cut=cut)
    assert cut.cut and 0 <= cut.accuracy <= 1
    last = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 4
    again = CurveCut(4, threshold=None)
    train(config, tmp_path / "run", resume=True, progress=False, cut=again)
    assert again.cut
    assert read_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")["global_step"] == 4
    kept = CurveCut(4, threshold=0.0)  # every accuracy passes: trained to the end
    train(config, tmp_path / "kept", progress=False, cut=kept)
    assert not kept.cut and kept.accuracy == cut.accuracy
    assert read_checkpoint(tmp_path / "kept" / "checkpoints" / "last.ckpt")["global_step"] == 8


def _search_command(space: Path, out: Path) -> list[str]:
    argv = [sys.executable, "-m", "neurojoule", "search", "--space", str(space), "--task"]
    argv += ["digits", "--config", "digits", "--train-steps", "16", "--population", "4"]
    argv += ["--generations", "3", "--out", str(out), "--quiet", "--proxy", "--json"]
    for item in DIGITS:
        argv += ["--set", item]
    return argv


@pytest.fixture(scope="module")
def space_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("space") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


@pytest.fixture(scope="module")
def uninterrupted(space_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("search") / "one"
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    done = subprocess.run(_search_command(space_file, out), env=env, capture_output=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), env


def test_a_search_by_training_reports_trained_candidates(uninterrupted):
    result, _ = uninterrupted
    assert result["evaluated"] == 12 and result["generations"] == 3
    for entry in result["front"]:
        training = entry["training"]
        assert training["steps"] == (8 if training["cut"] else 16)
        assert 0 <= training["test_accuracy"] <= 1
    cut_steps = [entry["training"]["cut_accuracy"] for entry in result["front"]]
    assert all(0 <= value <= 1 for value in cut_steps)
    assert result["proxy"]["candidates"] >= 3
    assert result["context"]["training"]["steps"] == 16


def test_a_killed_search_by_training_resumes_to_the_same_front(uninterrupted, space_file, tmp_path):
    expected, env = uninterrupted
    out = tmp_path / "killed"
    command = _search_command(space_file, out)
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    try:
        # killed in the second generation, after a candidate of it has a checkpoint
        kill_when(process, lambda: len(list(out.glob("candidates/*/checkpoints/last.ckpt"))) >= 7)
        process.wait(timeout=60)
    finally:
        process.kill()
    assert not (out / "front.json").exists()
    resumed = subprocess.run([*command, "--resume"], env=env, capture_output=True)
    assert resumed.returncode == 0, resumed.stderr
    got = _without_wall_times(json.loads(resumed.stdout))
    expected = _without_wall_times(expected)
    for key in ("front", "best", "largest", "points", "proxy", "fitness", "validation"):
        assert got[key] == expected[key], key


def _without_wall_times(result: dict) -> dict:
    trained = [*result["front"], result["best"], result["largest"]]
    for training in [entry["training"] for entry in trained] + [
        result["fitness"]["reference"]["training"]
    ]:
        training.pop("train_seconds")
    return result
