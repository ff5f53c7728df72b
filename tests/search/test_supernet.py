"""Supernet training steps against standalone networks, the sampling rules against draws made
here, batch-norm recalibration against statistics computed here from hooked inputs, and the
inherited model against the supernet's slices."""

import copy
import random

import pytest
import torch
from search_fixtures import tiny_spikformer_space

from neurojoule.data.tasks import TaskInfo
from neurojoule.neuron import lif_layers
from neurojoule.search.space import load_space, parse_space, space_names
from neurojoule.search.subnets import calibration_batches, inherited_model, recalibrate_batchnorm
from neurojoule.search.supernet import SubnetSampler, SupernetModule, as_subnet, space_values
from neurojoule.train.config import TrainConfig

# neuron values without the registry's threshold 1 and tau 2, so that the largest subnet
# (threshold and tau nearest those) differs from the registry's defaults
TINY = tiny_spikformer_space([0.5, 0.75], [1.5, 3.0])
INFO = TaskInfo("fashion-mnist", 10, 256, in_channels=1, image_size=16)


def _module(sampling: str = "uniform", seed: int = 3, **fields) -> SupernetModule:
    fields = {"lif_mode": "bptt", **fields}
    config = TrainConfig(
        model="spikformer",
        task="fashion-mnist",
        space="tiny",
        sampling=sampling,
        seed=seed,
        **fields,
    )
    torch.manual_seed(0)
    module = SupernetModule(config.to_dict(), INFO.__dict__, TINY)
    module.log = lambda *args, **kwargs: None
    return module


def _batch(size: int = 6, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    images = 3 * torch.randn(size, 1, 16, 16, generator=generator)  # spikes in every layer
    return images, torch.randint(0, 10, (size,), generator=generator)


@pytest.mark.parametrize("name", [*space_names(), "tiny"])
def test_a_space_as_data_reads_back_as_the_same_space(name):
    space = parse_space(TINY) if name == "tiny" else load_space(name)
    again = parse_space(space_values(space))
    assert again.model == space.model and again.genes == space.genes


def test_mixed_genes_survive_as_data():
    values = {**TINY, "shared": {"embed_dim": [8, 16], "steps": {"int": [1, 3]}}}
    values["per_block"] = {**TINY["per_block"], "tau": {"real": [1.0, 4.0]}}
    space = parse_space(values)
    assert space_values(space)["shared"]["steps"] == {"int": [1, 3]}
    assert parse_space(space_values(space)).genes == space.genes


def _drawn_here(space, seed: int, count: int) -> list[dict]:
    rng = random.Random(seed)
    return [space.decode(space.sample(rng)) for _ in range(count)]


def test_uniform_draws_one_subnet_per_step_and_sandwich_four():
    space = parse_space(TINY)
    uniform = SubnetSampler(space, "uniform", seed=5)
    assert [uniform.draw() for _ in range(6)] == [[s] for s in _drawn_here(space, 5, 6)]
    sandwich = SubnetSampler(space, "sandwich", seed=5)
    steps = [sandwich.draw() for _ in range(3)]
    drawn = _drawn_here(space, 5, 6)
    for index, subnets in enumerate(steps):
        largest, smallest, *random_ones = subnets
        assert largest["embed_dim"] == 16 and largest["depth"] == 2 and largest["steps"] == 2
        assert largest["heads"] == (2, 2) and largest["mlp_ratio"] == (2.0, 2.0)
        assert smallest["embed_dim"] == 8 and smallest["depth"] == 1 and smallest["steps"] == 1
        assert smallest["heads"] == (1,) and smallest["mlp_ratio"] == (1.0,)
        assert random_ones == drawn[2 * index : 2 * index + 2]


@pytest.mark.parametrize(
    "sampling, loss", [("uniform", "ce"), ("sandwich", "ce"), ("uniform", "tet")]
)
def test_a_training_step_sums_the_losses_and_gradients_of_its_standalone_subnets(sampling, loss):
    module = _module(sampling, loss=loss)
    space = parse_space(TINY)
    drawn = _drawn_here(space, 3, 2)
    subnets = drawn[:1] if sampling == "uniform" else [
        space.extreme(largest=True), space.extreme(largest=False), *drawn
    ]  # fmt: skip
    x, y = _batch()
    standalone = [module.model.extract(subnet).train() for subnet in subnets]
    module.train()
    total = module.training_step((x, y), 0)
    total.backward()
    expected_loss = 0.0
    head_grad = torch.zeros_like(module.model.supernet.head.weight)
    for model in standalone:
        if loss == "tet":
            per_step = model.step_logits(x)
            value = torch.nn.functional.cross_entropy(
                per_step.flatten(0, 1), y.repeat(per_step.shape[0])
            )
        else:
            value = torch.nn.functional.cross_entropy(model(x), y)
        value.backward()
        expected_loss += value.item()
        grad = model.head.weight.grad
        head_grad[: grad.shape[0], : grad.shape[1]] += grad
    assert total.item() == pytest.approx(expected_loss, rel=1e-6)
    assert torch.allclose(module.model.supernet.head.weight.grad, head_grad, atol=1e-6)
    assert head_grad.abs().sum() > 0


def test_the_sampler_continues_from_a_checkpoint():
    module = _module("uniform")
    x, y = _batch()
    module.training_step((x, y), 0)
    saved = {}
    module.on_save_checkpoint(saved)
    following = [module.sampler.draw() for _ in range(3)]
    other = _module("uniform", seed=99)  # another seed: another sequence, until it loads
    other.on_load_checkpoint(saved)
    assert [other.sampler.draw() for _ in range(3)] == following


def test_validation_and_test_measure_the_largest_subnet():
    module = _module().eval()
    space = parse_space(TINY)
    largest = space.extreme(largest=True)
    assert largest["v_threshold"] == (0.75, 0.75) and largest["tau"] == (1.5, 1.5)
    x, _ = _batch()
    with torch.no_grad():
        expected = module.model.extract(largest).eval()(x)
        assert torch.equal(module(x), expected)


def test_the_supernet_takes_the_configs_other_options_and_refuses_searched_ones():
    module = _module(model_options={"attn_threshold": 0.25}, lif_mode="sltt")
    assert module.model.supernet.config.attn_threshold == 0.25
    # the subnets train in the configured LIF mode too
    x, y = _batch()
    module.train().training_step((x, y), 0)
    (subnet,) = _drawn_here(parse_space(TINY), 3, 1)
    modes = {layer.mode for layer in lif_layers(module.model.template(subnet)).values()}
    assert modes == {"sltt"}
    with pytest.raises(ValueError, match=r"model_options \['embed_dim'\] are searched"):
        _module(model_options={"embed_dim": 16})
    config = TrainConfig(model="spiking-mlp", task="fashion-mnist", space="tiny")
    with pytest.raises(ValueError, match="space is of model 'spikformer', the config names"):
        SupernetModule(config.to_dict(), INFO.__dict__, TINY)


def test_sampling_without_a_space_and_a_space_in_plain_training_are_refused():
    with pytest.raises(ValueError, match="'sandwich' draws subnets of a supernet: it needs a"):
        TrainConfig(model="spikformer", task="fashion-mnist", sampling="sandwich")
    with pytest.raises(ValueError, match="sampling must be one of"):
        TrainConfig(model="spikformer", task="fashion-mnist", space="x", sampling="all")
    from neurojoule.train.module import ClassifierModule

    config = TrainConfig(model="spikformer", task="fashion-mnist", space="tiny")
    with pytest.raises(ValueError, match="names a search space .* `neurojoule supernet train`"):
        ClassifierModule(config.to_dict(), INFO.__dict__)


# ---- batch-norm recalibration ------------------------------------------------------------


def _hooked_statistics(model: torch.nn.Module, batches: list) -> dict[str, tuple]:
    """Per batch norm: the mean over the batches of each channel's batch mean and unbiased
    batch variance of its input, captured with hooks while the batch norms normalise with
    batch statistics (training mode) and the rest of the model runs in eval mode."""
    model = copy.deepcopy(model).eval()
    seen: dict[str, list[torch.Tensor]] = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.train()
            module.register_forward_pre_hook(
                lambda m, args, name=name: seen.setdefault(name, []).append(args[0].detach())
            )
    with torch.no_grad():
        for x in batches:
            model(x)
    statistics = {}
    for name, inputs in seen.items():
        means, variances = [], []
        for value in inputs:
            flat = value.transpose(0, 1).reshape(value.shape[1], -1).double()  # [C, everything]
            means.append(flat.mean(1))
            variances.append(flat.var(1, unbiased=True))
        statistics[name] = (torch.stack(means).mean(0), torch.stack(variances).mean(0))
    return statistics


def test_recalibration_recomputes_each_statistic_as_the_average_over_the_batches():
    torch.manual_seed(1)
    model = _module().model.extract(parse_space(TINY).extreme(largest=True))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.fill_(7.0)  # stale statistics that must not survive
                module.running_var.fill_(9.0)
    batches = [_batch(size, seed)[0] for size, seed in ((6, 1), (4, 2), (5, 3))]
    expected = _hooked_statistics(model, batches)
    assert len(expected) > 10
    result = recalibrate_batchnorm(model.train(), [(x, None) for x in batches])
    assert result is model and not model.training
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            mean, var = expected[name]
            assert torch.allclose(module.running_mean.double(), mean, atol=1e-5), name
            assert torch.allclose(module.running_var.double(), var, rtol=1e-4, atol=1e-5), name
            assert module.num_batches_tracked == 3 and module.momentum == 0.1
            assert not module.training


def test_recalibration_keeps_dropout_off_and_needs_a_batch():
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.Dropout(0.9), torch.nn.BatchNorm1d(8)
    )
    batches = [torch.randn(16, 4) for _ in range(2)]
    with torch.no_grad():
        inputs = [model[0](x) for x in batches]  # what the batch norm sees without dropout
    recalibrate_batchnorm(model, batches)
    expected = torch.stack([x.mean(0) for x in inputs]).mean(0)
    assert torch.allclose(model[2].running_mean, expected, atol=1e-6)
    with pytest.raises(ValueError, match="needs at least one batch"):
        recalibrate_batchnorm(model, [])


def test_an_inherited_model_has_the_supernets_slices_and_recalibrated_statistics():
    module = _module()
    space = parse_space(TINY)
    subnet = as_subnet(space, {**space.extreme(largest=False), "embed_dim": 16.0})
    assert subnet["embed_dim"] == 16 and isinstance(subnet["embed_dim"], int)
    batches = [_batch(6, seed)[0] for seed in (4, 5)]
    model = inherited_model(module.model, subnet, batches)
    assert not model.training
    full = module.model.supernet.state_dict()
    for name, value in model.state_dict().items():
        corner = full[name][tuple(slice(0, n) for n in value.shape)]
        if name.endswith(("running_mean", "running_var", "num_batches_tracked")):
            continue
        assert torch.equal(value, corner), name
    expected = _hooked_statistics(module.model.extract(subnet), batches)
    bn = "blocks.0.mlp.fc1.module.1"
    assert torch.allclose(model.state_dict()[f"{bn}.running_mean"].double(), expected[bn][0])
    kept = inherited_model(module.model, subnet, [])  # no batches: the inherited statistics
    assert torch.equal(kept.state_dict()[f"{bn}.running_var"], full[f"{bn}.running_var"][:16])


def test_calibration_batches_are_a_seeded_draw_of_distinct_samples():
    dataset = torch.utils.data.TensorDataset(torch.arange(50.0).unsqueeze(1), torch.zeros(50))
    batches = calibration_batches(dataset, count=3, batch_size=8, seed=2)
    assert [len(b) for b in batches] == [8, 8, 8]
    values = torch.cat(batches).flatten().tolist()
    assert len(set(values)) == 24
    order = torch.randperm(50, generator=torch.Generator().manual_seed(2))[:24]
    assert values == order.float().tolist()
    assert len(calibration_batches(dataset, count=10, batch_size=8)) == 7  # 50 samples


def test_a_subnet_from_a_genome_or_outside_the_space():
    space = parse_space(TINY)
    genome = space.sample(random.Random(0))
    assert as_subnet(space, genome) == space.decode(genome)
    listed = {**space.extreme(largest=False), "heads": [1], "tau": [3]}
    assert as_subnet(space, listed)["tau"] == (3.0,)
    for wrong, match in (
        ({**listed, "embed_dim": 24}, "embed_dim 24 is not in the space"),
        ({**listed, "heads": [1, 2]}, "heads .* is not 1 values"),
        ({**listed, "heads": 1}, "heads takes one value per block"),
        ({"embed_dim": 8}, "a subnet has the options"),
        ([1, 2], "a subnet is a mapping"),
    ):
        with pytest.raises(ValueError, match=match) as error:
            as_subnet(space, wrong)
        assert "\n" not in str(error.value)
