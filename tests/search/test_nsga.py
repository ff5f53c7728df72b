"""NSGA-II from pymoo over the mixed space: pymoo variables of each kind, genomes of Python
numbers in the space, ranks that are a brute-force non-dominated sorting, elitism that keeps
every non-dominated subnet, and a seeded run that a saved state continues exactly."""

import json

from pymoo.core.variable import Choice, Integer, Real
from search_fixtures import FormulaEvaluator, tiny_space

from neurojoule.search.evaluator import subnet_key
from neurojoule.search.nsga import NSGA2Search, pymoo_variables
from neurojoule.search.objectives import pareto_front


def make(seed=0, population=8, generations=5, objectives=("error", "energy")):
    space = tiny_space()
    evaluator = FormulaEvaluator(space)
    return NSGA2Search(space, evaluator, objectives, population, generations, seed), evaluator


def run(search):
    while not search.done:
        search.step()
    pop = search.algorithm.pop
    return [dict(x) for x in pop.get("X")], pop.get("F").tolist()


def ranks_by_hand(vectors):
    """Non-dominated sorting by peeling fronts off, the textbook way."""
    left, rank, ranks = set(range(len(vectors))), 0, [None] * len(vectors)

    def dominates(a, b):
        return all(x <= y for x, y in zip(a, b, strict=True)) and a != b

    while left:
        front = {i for i in left if not any(dominates(vectors[j], vectors[i]) for j in left)}
        for i in front:
            ranks[i] = rank
        left -= front
        rank += 1
    return ranks


def test_variables_of_each_kind_and_genomes_in_the_space():
    search, evaluator = make()
    variables = pymoo_variables(search.space)
    assert list(variables) == [gene.name for gene in search.space.genes]
    assert isinstance(variables["embed_dim"], Choice)
    assert isinstance(variables["steps"], Integer) and variables["steps"].bounds == (1, 3)
    assert isinstance(variables["v_threshold.1"], Real)
    genomes, results = search.step()
    assert len(genomes) == 8 and len(results) == 8
    for genome, result in zip(genomes, results, strict=True):
        for gene in search.space.genes:
            value = genome[gene.name]
            assert type(value) in (int, float)
            if gene.kind == "choice":
                assert value in gene.values and type(value) is type(gene.values[0])
            else:
                low, high = gene.values
                assert low <= value <= high
                assert type(value) is (int if gene.kind == "int" else float)
        assert result == evaluator.objectives([genome])[0]


def test_ranks_are_a_non_dominated_sorting_and_the_best_subnets_survive():
    search, evaluator = make(seed=1, population=24, generations=5)
    run(search)
    pop = search.algorithm.pop
    vectors = [tuple(f) for f in pop.get("F").tolist()]
    assert pop.get("rank").tolist() == ranks_by_hand(vectors)
    # elitism: every subnet that nothing evaluated dominates is still in the population
    keys = list(evaluator.cache)
    best = {keys[i] for i in pareto_front([evaluator.cache[k] for k in keys], ("error", "energy"))}
    assert len(best) < 24
    population = {subnet_key(search.space.decode(x)) for x in pop.get("X")}
    assert best <= population
    assert len(population) == 24  # no two members are one subnet


def test_objectives_chosen_by_option():
    search, _ = make(objectives=("error", "energy", "params"))
    genomes, results = search.step()
    F = search.algorithm.pop.get("F")
    assert F.shape == (8, 3)
    assert sorted(map(tuple, F.tolist())) == sorted(
        (1 - r.accuracy, r.energy_uj, float(r.params)) for r in results
    )


def test_same_seed_same_front_and_a_saved_state_continues_it():
    first = run(make(seed=3)[0])
    assert run(make(seed=3)[0]) == first
    assert run(make(seed=4)[0]) != first
    search, evaluator = make(seed=3)
    search.step()
    search.step()
    saved = json.loads(json.dumps(search.state()))
    resumed = NSGA2Search(search.space, evaluator, ("error", "energy"), 8, 5, seed=3)
    resumed.load_state(saved)
    assert resumed.generation == 2
    assert run(resumed) == first
