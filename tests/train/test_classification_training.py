import csv
import json

import pytest
import torch

from neurojoule.cli import main
from neurojoule.neuron.sdn import SurrogateDynamicNetwork, save_sdn
from neurojoule.train import evaluate, lif_mode, load_checkpoint, train
from neurojoule.train.checkpoints import AtomicCheckpointIO
from neurojoule.train.config import load_config
from neurojoule.train.splits import make_splits

TINY = [
    "task_options={min_length: 20, max_length: 60, n_train: 64, n_val: 16, n_test: 16,"
    " seq_len: 60}",
    "model_options={d_model: 8, n_layers: 1, d_state: 4, bidirectional: true}",
    "optim.batch_size=16",
    "optim.epochs=1",
]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROJOULE_CACHE", str(tmp_path / "cache"))


def test_train_writes_checkpoints_log_and_mode_then_resumes(tmp_path, cache, monkeypatch):
    out = tmp_path / "run"
    config = load_config("listops-cpu", TINY)
    train(config, out, progress=False)
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert json.loads((out / "lif_mode.json").read_text())["chosen"] in ("bptt", "sdn")
    rows = list(csv.DictReader((out / "log" / "version_0" / "metrics.csv").open()))
    rate_columns = [c for c in rows[0] if c.startswith("train/spike_rate/backbone.layers.0")]
    assert rate_columns and any(row[rate_columns[0]] for row in rows)
    assert any(row.get("test/acc") for row in rows)
    assert any(row.get("test/spike_rate/mean") for row in rows)  # test runs with the exact LIF
    first_steps = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    first_timing = json.loads((out / "timing.json").read_text())
    assert first_timing["train_seconds"] >= first_timing["validate_seconds"] > 0

    with pytest.raises(ValueError, match="--resume"):
        train(config, out, progress=False)
    # a resumed auto run keeps the mode its first start chose, without measuring again
    other = {"bptt": "sdn", "sdn": "bptt"}[
        json.loads((out / "lif_mode.json").read_text())["chosen"]
    ]
    (out / "lif_mode.json").write_text(json.dumps({"chosen": other}))
    applied, real_set_lif_mode = [], lif_mode.set_lif_mode
    monkeypatch.setattr(
        lif_mode,
        "set_lif_mode",
        lambda model, mode: applied.append(mode) or real_set_lif_mode(model, mode),
    )
    more = load_config("listops-cpu", [*TINY, "optim.epochs=2"])
    train(more, out, resume=True, progress=False)
    assert applied[0] == other  # before fitting; the final test sets the exact LIF
    resumed = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert resumed == 2 * first_steps
    # the resumed run adds its training time to the first run's
    timing = json.loads((out / "timing.json").read_text())
    assert timing["train_seconds"] > 1.2 * first_timing["train_seconds"]


def test_eval_reports_accuracy_rates_and_energy(tmp_path, cache, capsys):
    out = tmp_path / "run"
    train(load_config("listops-cpu", TINY), out, progress=False)
    ckpt = out / "checkpoints" / "last.ckpt"
    result = evaluate(ckpt)
    assert result["samples"] == 16
    # against a plain loop over the test split with the unfolded model and the exact LIF
    config, _, model = load_checkpoint(ckpt)
    spikes = []
    neuron = model.backbone.layers[0].block.neuron
    neuron.register_forward_hook(lambda module, args, out: spikes.append(out))
    x, y = next(iter(torch.utils.data.DataLoader(make_splits(config)[2], batch_size=16)))
    with torch.no_grad():
        correct = (model(x).argmax(-1) == y).sum().item()
    assert abs(result["accuracy"] * 16 - correct) <= 1
    (rate,) = result["spike_rates"].values()
    assert rate == pytest.approx(torch.cat(spikes).mean().item(), abs=2e-3)
    assert list(result["spike_rates"]) == ["backbone.layers.0.block.neuron"]
    assert evaluate(ckpt, split="train")["samples"] == 64  # what it trained on
    assert evaluate(ckpt, split="train", limit_samples=10)["samples"] == 10
    layers = [row.name for row in result["energy"].layers]
    assert "backbone.layers.0.block.conv" in layers  # the spike-fed 1x1 conv is counted
    capsys.readouterr()
    assert main(["eval", str(ckpt), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["accuracy"] == result["accuracy"]
    assert printed["energy"]["totals"]["sops"] > 0

    checkpoint = torch.load(ckpt, weights_only=True)
    checkpoint["hyper_parameters"]["config"]["model_options"]["d_model"] = 16
    torch.save(checkpoint, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="weights do not fit the model its config builds"):
        load_checkpoint(tmp_path / "other.ckpt")


def test_eval_in_sdn_mode_and_checkpoint_reload(tmp_path, cache):
    out = tmp_path / "run"
    train(load_config("listops-cpu", [*TINY, "lif_mode=sltt"]), out, progress=False)
    config, info, model = load_checkpoint(out / "checkpoints" / "last.ckpt")
    assert config.lif_mode == "sltt" and info.name == "listops"
    exact = evaluate(out / "checkpoints" / "last.ckpt", lif_mode="bptt")
    sdn = evaluate(out / "checkpoints" / "last.ckpt", lif_mode="sdn")
    assert abs(exact["mean_spike_rate"] - sdn["mean_spike_rate"]) < 0.02


def test_bad_checkpoints_are_rejected(tmp_path):
    garbage = tmp_path / "bad.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a neurojoule training checkpoint"):
        load_checkpoint(garbage)
    with pytest.raises(ValueError, match="no checkpoint file"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_checkpoint_writes_are_atomic(tmp_path):
    target = tmp_path / "c.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"weights": torch.ones(3)}, target)
    with pytest.raises(Exception):  # noqa: B017 - whatever pickling raises
        io.save_checkpoint({"weights": torch.zeros(3), "bad": lambda: None}, target)
    assert torch.equal(torch.load(target, weights_only=True)["weights"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["c.ckpt"]


def test_sdn_agreement_on_the_currents_a_trained_model_receives(tmp_path, cache, capsys):
    from neurojoule.train.sdn import evaluate_sdn_on_model

    out = tmp_path / "run"
    train(load_config("listops-cpu", TINY), out, progress=False)
    result = evaluate_sdn_on_model(out / "checkpoints" / "last.ckpt", limit_samples=16)
    (layer,) = result["layers"]
    assert layer["layer"] == "backbone.layers.0.block.neuron" and result["samples"] == 16
    assert 0.95 < layer["spike_agreement"] <= 1.0

    checkpoint = str(out / "checkpoints" / "last.ckpt")
    wrong_decay = tmp_path / "sdn_decay_0.5.json"
    save_sdn(SurrogateDynamicNetwork(0.5), wrong_decay)
    for extra, message in (
        (["--decay", "0.125"], "--decay does not go with --checkpoint"),
        (["--path", str(wrong_decay)], "holds an SDN for decay 0.5, not 0.125"),
    ):
        assert main(["sdn", "eval", "--checkpoint", checkpoint, *extra]) == 2
        assert message in capsys.readouterr().err
    baseline = tmp_path / "s4d"
    train(load_config("listops-cpu", TINY, model="s4d"), baseline, progress=False)
    with pytest.raises(ValueError, match="without spiking SSM layers"):
        evaluate_sdn_on_model(baseline / "checkpoints" / "last.ckpt", limit_samples=16)


def test_spike_rate_penalty_adds_the_firing_rate_beyond_the_target_to_the_loss(cache):
    from neurojoule.layers import ssm_neurons
    from neurojoule.train.module import ClassifierModule

    config = load_config("listops-cpu", [*TINY, "model_options.n_layers=2"])
    train_set, _, _, info = make_splits(config)
    x, y = next(iter(torch.utils.data.DataLoader(train_set, batch_size=8)))

    def loss_and_rates(penalty, target):
        config.spike_rate_penalty, config.spike_rate_target = penalty, target
        torch.manual_seed(0)
        module = ClassifierModule(config.to_dict(), info.__dict__)
        module.log = lambda *args, **kwargs: None
        module._begin_stage("train")
        rates = []
        hooks = [
            n.register_forward_hook(lambda m, i, out: rates.append(out.mean().item()))
            for n in ssm_neurons(module.model).values()
        ]
        loss = module.training_step((x, y), 0).item()
        for hook in hooks:
            hook.remove()
        return loss, sum(rates) / len(rates)

    plain, mean_rate = loss_and_rates(0.0, 0.0)
    assert 0 < mean_rate < 1
    for target in (0.0, mean_rate / 2, mean_rate + 0.05):
        loss, rate = loss_and_rates(2.5, target)
        assert rate == mean_rate  # the penalty changes the loss, not the forward pass
        assert loss - plain == pytest.approx(2.5 * max(0.0, mean_rate - target), rel=1e-5, abs=1e-7)


def test_validation_inside_a_training_epoch_keeps_the_rates_apart(cache):
    from neurojoule.layers import ssm_neurons
    from neurojoule.train.module import ClassifierModule

    config = load_config("listops-cpu", [*TINY, "model_options.n_layers=1"])
    train_set, val_set, _, info = make_splits(config)
    module = ClassifierModule(config.to_dict(), info.__dict__)
    logged = {}
    module.log = lambda name, value, **kwargs: logged.__setitem__(name, value)
    (neuron,) = ssm_neurons(module.model).values()
    seen = []
    neuron.register_forward_hook(lambda m, i, out: seen.append(out.mean().item()))
    batch = {
        name: next(iter(torch.utils.data.DataLoader(split, batch_size=4)))
        for name, split in (("train", train_set), ("val", val_set))
    }
    module._begin_stage("train")
    module.model(batch["train"][0])
    module._begin_stage("val")  # Lightning validates before the training epoch ends
    module.model(batch["val"][0])
    module._end_stage("val")
    module.model(batch["train"][0])
    module._end_stage("train")
    assert logged["val/spike_rate/mean"] == pytest.approx(seen[1])
    assert logged["train/spike_rate/mean"] == pytest.approx((seen[0] + seen[2]) / 2)
    assert not module._hooks  # recording stops with the epoch


def test_eval_sample_limits(tmp_path, cache):
    out = tmp_path / "run"
    train(load_config("listops-cpu", [*TINY, "limit_eval_samples=10"]), out, progress=False)
    ckpt = out / "checkpoints" / "last.ckpt"
    assert evaluate(ckpt)["samples"] == 10  # the config's limit
    assert evaluate(ckpt, limit_samples=4)["samples"] == 4
    assert evaluate(ckpt, whole_split=True)["samples"] == 16  # n_test
    with pytest.raises(ValueError, match="not both"):
        evaluate(ckpt, limit_samples=4, whole_split=True)
    with pytest.raises(SystemExit) as error:
        main(["eval", str(ckpt), "--limit", "4", "--whole-split"])
    assert error.value.code == 2
