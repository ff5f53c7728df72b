"""neurojoule supernet train|extract on a tiny space: the run folder rebuilds the supernet
(without the space file), an extracted subnet is a checkpoint that `eval` reads and
`train --init` fine-tunes from its very weights, and bad input is one line."""

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from search_fixtures import tiny_spikformer_space

from neurojoule.cli import main
from neurojoule.data.fashion_mnist import find_fashion_mnist
from neurojoule.search.space import parse_space
from neurojoule.search.subnets import calibration_batches, recalibrate_batchnorm
from neurojoule.search.supernet import load_supernet
from neurojoule.train.checkpoints import load_checkpoint

SPACE = tiny_spikformer_space([0.8, 1.0], [2.0, 10.0])
SUBNET = {
    "embed_dim": 16,
    "steps": 1,
    "depth": 1,
    "heads": [2],
    "mlp_ratio": [1.0],
    "v_threshold": [0.8],
    "tau": [10.0],
}
FEW = ["limit_train_samples=32", "limit_eval_samples=8", "optim.batch_size=8", "lif_mode=bptt"]
FIXTURE = Path(__file__).parent.parent / "fixtures" / "pre-rename-run"  # not a supernet


def _sets(items: list[str]) -> list[str]:
    return [word for item in items for word in ("--set", item)]


@pytest.fixture(scope="module")
def supernet_run(tmp_path_factory):
    """A 4-step uniform supernet run; its space file is gone once it has trained."""
    try:
        find_fashion_mnist("train")
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST files not installed (Debian dataset-fashion-mnist)")
    folder = tmp_path_factory.mktemp("supernet")
    space_file = folder / "space" / "tiny.yaml"
    space_file.parent.mkdir()
    space_file.write_text(yaml.safe_dump(SPACE, sort_keys=False))  # genes in this order
    run = folder / "run"
    argv = ["supernet", "train", "--space", str(space_file), "--task", "fashion-mnist"]
    argv += ["--out", str(run), "--quiet", *_sets([*FEW, "optim.epochs=1"])]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEUROJOULE_CACHE", str(folder / "cache"))
        assert main(argv) == 0
    shutil.rmtree(space_file.parent)
    return run


def _one_line_error(capsys, argv: list[str], *fragments: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err


def test_the_run_folder_rebuilds_the_supernet_without_the_space_file(supernet_run):
    config = yaml.safe_load((supernet_run / "config.yaml").read_text())
    assert config["space"].endswith("tiny.yaml") and config["sampling"] == "uniform"
    assert config["model"] == "spikformer"
    elastic, space, loaded, info = load_supernet(supernet_run)
    assert space.genes == parse_space(SPACE).genes and loaded.space == config["space"]
    assert info.image_size == 28 and not elastic.training
    (best,) = (supernet_run / "checkpoints").glob("best-*.ckpt")
    saved = torch.load(best, weights_only=True)["state_dict"]
    state = elastic.state_dict()
    assert {f"model.{name}" for name in state} == set(saved)
    assert all(torch.equal(value, saved[f"model.{name}"]) for name, value in state.items())
    assert elastic.supernet.config.embed_dim == 16 and elastic.supernet.config.depth == 2


def test_an_extracted_subnet_is_a_checkpoint_that_eval_reads(supernet_run, tmp_path, capsys):
    subnet_file = tmp_path / "subnet.json"
    subnet_file.write_text(json.dumps(SUBNET))
    checkpoint = tmp_path / "subnet.ckpt"
    argv = ["supernet", "extract", str(supernet_run), "--subnet", str(subnet_file)]
    assert main([*argv, "--out", str(checkpoint), "--calibration-batches", "2"]) == 0
    out = capsys.readouterr().out
    assert "recalibrated on 2 training batches (16 samples)" in out
    assert f"neurojoule eval {checkpoint}" in out
    config, info, model = load_checkpoint(checkpoint)
    assert config.model == "spikformer" and config.space is None
    assert config.model_options == SUBNET and info.name == "fashion-mnist"
    # weights: the supernet's leading slices; statistics: recomputed on the calibration draw
    elastic, _, supernet_config, _ = load_supernet(supernet_run)
    from neurojoule.train.splits import make_splits

    batches = calibration_batches(make_splits(supernet_config)[0], 2, 8, seed=0)
    subnet = {k: tuple(v) if isinstance(v, list) else v for k, v in SUBNET.items()}
    expected = recalibrate_batchnorm(elastic.extract(subnet), batches).state_dict()
    full = elastic.supernet.state_dict()
    for name, value in model.state_dict().items():
        assert torch.equal(value, expected[name]), name
        if not name.endswith(("running_mean", "running_var", "num_batches_tracked")):
            assert torch.equal(value, full[name][tuple(slice(0, n) for n in value.shape)]), name
    assert main(["eval", str(checkpoint), "--limit", "8", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["samples"] == 8 and 0.0 <= result["accuracy"] <= 1.0
    assert result["energy"]["time_steps"] == 1 and result["unfolded_batchnorms"] == []


@pytest.mark.parametrize("which, dim, depth", [("--largest", 16, 2), ("--smallest", 8, 1)])
def test_the_largest_and_smallest_subnets(supernet_run, tmp_path, capsys, which, dim, depth):
    checkpoint = tmp_path / "extreme.ckpt"
    argv = ["supernet", "extract", str(supernet_run), which, "--out", str(checkpoint)]
    assert main([*argv, "--calibration-batches", "0"]) == 0
    assert "not recalibrated" in capsys.readouterr().out
    config, _, model = load_checkpoint(checkpoint)
    options = config.model_options
    assert (options["embed_dim"], options["depth"]) == (dim, depth)
    assert options["v_threshold"] == [1.0] * depth and options["tau"] == [2.0] * depth
    full = load_supernet(supernet_run)[0].supernet.state_dict()
    for name, value in model.state_dict().items():  # the statistics as inherited, too
        assert torch.equal(value, full[name][tuple(slice(0, n) for n in value.shape)]), name


def test_fine_tuning_starts_from_the_extracted_weights(supernet_run, tmp_path, capsys):
    checkpoint = tmp_path / "subnet.ckpt"
    argv = ["supernet", "extract", str(supernet_run), "--subnet", json.dumps(SUBNET)]
    assert main([*argv, "--out", str(checkpoint)]) == 0
    capsys.readouterr()
    _, _, start = load_checkpoint(checkpoint)
    out = tmp_path / "tuned"
    # a learning rate so small that one step moves no weight by more than 1e-6
    train = ["train", "spikformer", "--task", "fashion-mnist", "--init", str(checkpoint)]
    train += ["--max-steps", "1", "--out", str(out), "--quiet"]
    train += _sets([*FEW, "optim.lr=1.0e-9"])
    assert main(train) == 0
    written = yaml.safe_load((out / "config.yaml").read_text())
    assert written["init"] == str(checkpoint)
    assert written["model_options"] == SUBNET  # taken from the checkpoint
    tuned = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert tuned.keys() == {f"model.{name}" for name in start.state_dict()}
    moved = max(
        (tuned[f"model.{name}"] - value).abs().max().item()
        for name, value in start.named_parameters()
    )
    assert moved < 1e-6
    # the same command with shapes the checkpoint does not have: one line naming a tensor
    _one_line_error(
        capsys,
        [*train, "--set", "model_options.embed_dim=8", "--out", str(tmp_path / "wrong")],
        "its weights do not fit the model",
        "has shape",
    )


def test_bad_input_is_one_line(supernet_run, tmp_path, capsys):
    extract = ["supernet", "extract", str(supernet_run), "--out", str(tmp_path / "x.ckpt")]
    _one_line_error(
        capsys,
        ["supernet", "train", "--space", "no-such-space", "--task", "fashion-mnist"],
        "no space 'no-such-space'",
    )
    _one_line_error(
        capsys,
        ["supernet", "train", "--task", "fashion-mnist", "--config", "fashion-mnist"],
        "names no space; give --space",
    )
    _one_line_error(
        capsys, [*extract, "--subnet", json.dumps({**SUBNET, "embed_dim": 24})], "not in the space"
    )
    _one_line_error(capsys, [*extract, "--subnet", "{not json"], "--subnet is not valid JSON")
    _one_line_error(
        capsys,
        ["supernet", "extract", str(FIXTURE), "--largest", "--out", str(tmp_path / "y.ckpt")],
        "is not a supernet checkpoint",
    )
    _one_line_error(capsys, ["eval", str(supernet_run)], "names a search space")
    _one_line_error(
        capsys,
        ["train", "spikformer", "--task", "fashion-mnist", "--set", "space=x"]
        + ["--out", str(tmp_path / "z")],
        "names a search space",
    )
    assert not (tmp_path / "x.ckpt").exists() and not (tmp_path / "y.ckpt").exists()
