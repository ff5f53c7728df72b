"""The evolution strategy and the batched population: OpenES finds the optimum of a quadratic
and of a teacher-matching problem; its update is the formula computed by hand; a batched
population gives each member the logits and spikes of a model loaded with that member's
weights, and the same as the loop over members."""

import numpy as np
import pytest
import torch

from neurojoule.models.registry import build_model
from neurojoule.neuron.lif_layer import SpikingNeuron
from neurojoule.search.es import (
    ESConfig,
    OpenES,
    Population,
    centred_ranks,
    classification_fitness,
)

torch.set_num_threads(2)


def test_centred_ranks_are_the_ranks_scaled_to_plus_minus_a_half():
    fitness = torch.tensor([3.0, -1.0, 10.0, 0.5, 7.0])
    order = np.argsort(np.argsort(fitness.numpy()))  # rank of each value, 0 = lowest
    expected = order / 4 - 0.5
    assert torch.allclose(centred_ranks(fitness), torch.tensor(expected, dtype=torch.float32))


def test_one_update_is_adam_on_the_rank_shaped_antithetic_estimate():
    mean = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    config = ESConfig(population=6, sigma=0.1, lr=0.01)
    es = OpenES(mean, config, seed=3)
    members = es.ask()
    noise = ((members - mean) / config.sigma).numpy()
    assert np.allclose(noise[:3], -noise[3:])  # antithetic pairs
    fitness = -(members**2).sum(1)
    es.tell(fitness)
    # by hand: ranks in [-0.5, 0.5], g = sum u_i eps_i / (P sigma), first Adam step moves each
    # coordinate by lr * sign(g) (m / sqrt(v) = g / |g| after bias correction)
    ranks = np.argsort(np.argsort(fitness.numpy())) / 5 - 0.5
    gradient = ranks @ noise / (6 * 0.1)
    expected = mean.numpy() + 0.01 * gradient / (np.abs(gradient) + 1e-8)
    assert np.allclose(es.mean.detach().numpy(), expected, atol=1e-9)


def test_openes_finds_the_optimum_of_a_quadratic():
    optimum = torch.tensor([1.5, -2.0, 0.25, 3.0, -0.75])
    es = OpenES(torch.zeros(5), ESConfig(population=40, sigma=0.1, lr=0.05), seed=0)
    for _ in range(400):
        members = es.ask()
        es.tell(-((members - optimum) ** 2).sum(1))
    assert torch.allclose(es.mean.detach(), optimum, atol=0.05)


def test_openes_trains_a_spiking_student_to_the_teachers_spikes():
    """A student dense SNN from another initialisation learns a teacher's read-out class from
    spikes alone (a non-differentiable fitness: agreement of arg-max classes)."""
    torch.manual_seed(0)
    teacher = build_model("dense-snn", hidden=(16,), steps=4).eval()
    x = torch.randn(256, 1, 8, 8)
    with torch.no_grad():
        targets = teacher(x).argmax(-1)
    student = build_model("dense-snn", hidden=(16,), steps=4)
    population = Population(student)
    es = OpenES(population.vector(), ESConfig(population=40, sigma=0.05, lr=0.03), seed=1)

    def agreement(vector):
        population.assign(vector)
        with torch.no_grad():
            return float((student(x).argmax(-1) == targets).float().mean())

    before = agreement(es.mean.detach())
    for _ in range(150):
        members = es.ask()
        logits, spikes = population.run(members, x)
        es.tell(classification_fitness(logits, targets, spikes))
    assert agreement(es.mean.detach()) > max(0.85, before + 0.3)


def test_a_resumed_strategy_continues_exactly():
    def run(steps, es):
        for _ in range(steps):
            members = es.ask()
            es.tell(-(members**2).sum(1))
        return es

    whole = run(10, OpenES(torch.ones(4), ESConfig(population=8), seed=5))
    first = run(4, OpenES(torch.ones(4), ESConfig(population=8), seed=5))
    resumed = OpenES(torch.zeros(4), ESConfig(population=8), seed=0)
    resumed.load_state_dict(first.state_dict())
    assert torch.equal(run(6, resumed).mean, whole.mean)


@pytest.mark.parametrize(
    "name, options",
    [
        ("dense-snn", {"hidden": (24, 12), "steps": 3}),
        ("spiking-mlp", {"image_size": 8}),  # batch norms, patch encoding
    ],
)
def test_each_batched_member_runs_as_a_model_loaded_with_its_weights(name, options):
    torch.manual_seed(0)
    model = build_model(name, **options)
    population = Population(model)
    members = population.vector() + 0.05 * torch.randn(5, population.dim)
    x = torch.randn(7, 1, 8, 8)
    logits, spikes = population.run(members, x)
    looped_logits, looped_spikes = population.run(members, x, batched=False)
    for i in range(5):
        reference = build_model(name, **options).eval()
        reference.load_state_dict(model.state_dict())
        with torch.no_grad():
            parameters = dict(reference.named_parameters())
            offset = 0
            for p_name in population.names:
                size = parameters[p_name].numel()
                piece = members[i, offset : offset + size]
                parameters[p_name].copy_(piece.view_as(parameters[p_name]))
                offset += size
            counted = []
            record = lambda _m, _i, out, counted=counted: counted.append(float(out.sum()))  # noqa: E731
            hooks = [
                m.register_forward_hook(record)
                for m in reference.modules()
                if isinstance(m, SpikingNeuron)
            ]
            expected = reference(x)
            for hook in hooks:
                hook.remove()
        assert torch.allclose(logits[i], expected, atol=1e-5)
        assert spikes[i].item() == pytest.approx(sum(counted) / len(x), abs=1e-4)
    assert torch.allclose(logits, looped_logits, atol=1e-5)
    assert torch.allclose(spikes, looped_spikes, atol=1e-4)
    fitness = classification_fitness(logits, torch.arange(7) % 10, spikes)
    looped = classification_fitness(looped_logits, torch.arange(7) % 10, looped_spikes)
    assert torch.allclose(fitness, looped, atol=1e-5)


def test_the_spike_budget_costs_only_the_members_above_the_cap():
    logits = torch.zeros(3, 4, 10)  # every member: cross-entropy ln 10
    spikes = torch.tensor([50.0, 100.0, 300.0])
    fitness = classification_fitness(logits, torch.zeros(4, dtype=torch.long), spikes, 100.0, 2.0)
    expected = -np.log(10) - 2.0 * np.array([0.0, 0.0, 2.0])
    assert np.allclose(fitness.numpy(), expected)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"population": 7}, "even number"),
        ({"population": 0}, "even number"),
        ({"sigma": float("nan")}, "sigma"),
        ({"lr": -1.0}, "lr"),
    ],
)
def test_bad_settings_are_refused_in_one_line(settings, message):
    with pytest.raises(ValueError, match=message) as error:
        ESConfig(**settings)
    assert "\n" not in str(error.value)


def test_tell_refuses_non_finite_fitness_and_the_wrong_count():
    es = OpenES(torch.zeros(3), ESConfig(population=4))
    es.ask()
    with pytest.raises(ValueError, match="NaN or Inf"):
        es.tell(torch.tensor([0.0, 1.0, float("nan"), 2.0]))
    with pytest.raises(ValueError, match="expected 4 fitness values"):
        es.tell(torch.zeros(3))
