"""The published evolution: its mutation and crossover rates counted over many draws, a depth
change that resizes every per-block list, parents that are the fittest by the AEB fitness
computed by hand, only new subnets per generation, and a seeded, resumable run."""

import json
import random

import pytest
from search_fixtures import FormulaEvaluator, tiny_space

from neurojoule.search.evaluator import subnet_key
from neurojoule.search.evolution import Evolution, EvolutionSettings
from neurojoule.search.objectives import Fitness, aeb_fitness

PER_BLOCK = ("heads", "mlp_ratio", "v_threshold", "tau")


def make(seed=0, population=8, generations=4, **changes):
    space = tiny_space()
    evaluator = FormulaEvaluator(space)
    reference = evaluator.evaluate_subnets([space.extreme(largest=True)])[0]
    settings = EvolutionSettings.scaled(population, generations, **changes)
    return Evolution(space, settings, Fitness(reference), seed), evaluator


def run(evolution, evaluator):
    while not evolution.done:
        evolution.step(evaluator.objectives)
    return [(genome, result) for genome, result, _ in evolution.archive]


def test_published_settings_and_their_proportions():
    assert EvolutionSettings() == EvolutionSettings.scaled(50, 20)
    published = EvolutionSettings()
    assert (published.population, published.generations, published.top_k) == (50, 20, 10)
    assert (published.mutations, published.crossovers) == (25, 25)
    assert (published.gene_probability, published.shared_probability) == (0.2, 0.4)
    small = EvolutionSettings.scaled(20, 10)
    assert (small.top_k, small.mutations, small.crossovers) == (4, 10, 10)
    with pytest.raises(ValueError, match="exceed the population"):
        EvolutionSettings(population=10, mutations=6, crossovers=6)


def test_mutation_rates_are_the_published_ones():
    evolution, _ = make(seed=1)
    space = evolution.space
    parent = space.sample(random.Random(0))
    parent["depth"] = 2  # the largest: a depth change only shortens
    draws = 4000
    changed = {name: 0 for name in parent}
    for _ in range(draws):
        child = evolution.mutate(parent)
        for name in parent:
            changed[name] += child[name] != parent[name]
    # a redrawn gene keeps its value with probability 1/choices (reals always change)
    expected = {
        "depth": 0.4 * (1 - 1 / 2),
        "embed_dim": 0.4 * (1 - 1 / 2),
        "steps": 0.4 * (1 - 1 / 3),
        "heads.0": 0.2 * (1 - 1 / 2),
        "mlp_ratio.1": 0.2 * (1 - 1 / 2),
        "v_threshold.0": 0.2,
        "tau.1": 0.2 * (1 - 1 / 2),
    }
    for name, rate in expected.items():
        assert changed[name] / draws == pytest.approx(rate, abs=0.025), name


def test_a_deeper_mutation_redraws_and_resizes_every_per_block_list():
    evolution, _ = make(seed=2)
    space = evolution.space
    parent = space.encode(space.extreme(largest=False))  # depth 1
    parent["v_threshold.1"] = 0.3  # a latent value a new block must not keep
    grown = 0
    for _ in range(300):
        child = evolution.mutate(parent)
        subnet = space.decode(child)
        assert [len(subnet[name]) for name in PER_BLOCK] == [child["depth"]] * 4
        if child["depth"] == 2:
            grown += 1
            assert child["v_threshold.1"] != 0.3
    assert 30 < grown < 90  # 0.4 x 1/2 of 300


def test_crossover_takes_each_gene_from_one_of_two_parents():
    evolution, _ = make(seed=3)
    rng = random.Random(5)
    parents = [evolution.space.sample(rng) for _ in range(2)]
    from_first = 0
    for _ in range(500):
        child = evolution.crossover(parents)
        for name, value in child.items():
            assert value in (parents[0][name], parents[1][name])
        from_first += child["v_threshold.0"] == parents[0]["v_threshold.0"]
    # either parent is drawn twice a quarter of the time each; otherwise a coin decides
    assert from_first / 500 == pytest.approx(0.5, abs=0.07)


def test_parents_are_the_top_k_by_aeb_fitness_and_every_candidate_is_new():
    evolution, evaluator = make(seed=4, population=8, mutations=0, crossovers=6)
    reference = evaluator.evaluate_subnets([evolution.space.extreme(largest=True)])[0]
    seen = set()
    for _ in range(3):
        genomes, results = evolution.step(evaluator.objectives)
        keys = [subnet_key(evolution.space.decode(g)) for g in genomes]
        assert len(set(keys)) == len(keys) == 8 and not seen & set(keys)
        seen |= set(keys)
    by_hand = sorted(
        evolution.archive,
        key=lambda entry: -aeb_fitness(entry[1].accuracy, entry[1].energy_uj, reference.energy_uj),
    )
    top = evolution.top(evolution.settings.top_k)
    assert [t[0] for t in top] == [entry[0] for entry in by_hand[: len(top)]]
    # crossovers of the top k only: every gene of the 6 crossovers is one of a parent's
    children = evolution.ask()[:6]
    for child in children:
        for name, value in child.items():
            assert value in {parent[name] for parent, _, _ in top}


def test_same_seed_same_search_and_a_resumed_one_alike():
    first = run(*make(seed=7))
    assert run(*make(seed=7)) == first
    assert run(*make(seed=8)) != first
    evolution, evaluator = make(seed=7)
    evolution.step(evaluator.objectives)
    evolution.step(evaluator.objectives)
    saved = json.loads(json.dumps(evolution.state()))
    resumed, evaluator = make(seed=123)  # the state carries the generator
    resumed.load_state(saved)
    assert run(resumed, evaluator) == first


def test_evolution_improves_on_random_subnets():
    evolution, evaluator = make(seed=9, population=8, generations=6)
    run(evolution, evaluator)
    first = max(fitness for _, _, fitness in evolution.archive[:8])
    assert evolution.top(1)[0][2] > first
