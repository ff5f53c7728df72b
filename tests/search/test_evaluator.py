"""The evaluator: one measurement per subnet (genomes that differ beyond their depth share it),
results equal to a fresh measurement, its cache saved and loaded."""

import json

from search_fixtures import tiny_evaluator

from neurojoule.search.objectives import measure_objectives


def test_genomes_of_one_subnet_are_measured_once():
    evaluator = tiny_evaluator()
    space = evaluator.space
    genome = space.encode(space.extreme(largest=False))  # depth 1
    assert genome["depth"] == 1
    beyond = {**genome, "heads.1": 2, "mlp_ratio.1": 2.0, "v_threshold.1": 1.3, "tau.1": 2.0}
    deeper = {**beyond, "depth": 2}
    first = evaluator.objectives([genome, beyond, genome])
    assert len(evaluator.provider.calls) == 1  # one subnet, measured once
    assert evaluator.hits == 2 and evaluator.measured == 1
    assert first[0] is first[1] is first[2]
    second = evaluator.objectives([beyond, deeper])
    assert len(evaluator.provider.calls) == 2  # the deeper genome is another subnet
    assert second[0] is first[0] and evaluator.hits == 3
    assert evaluator.provider.calls == [space.decode(genome), space.decode(deeper)]

    # the cached objectives are a fresh measurement's, and a saved cache measures nothing
    model = evaluator.provider.elastic.extract(space.decode(deeper)).eval()
    assert second[1] == measure_objectives(model, evaluator.batches)[0]
    restored = tiny_evaluator()
    restored.load_state(json.loads(json.dumps(evaluator.state())))
    assert restored.objectives([deeper, genome]) == [second[1], first[0]]
    assert restored.provider.calls == [] and restored.measured == 0
