"""Search spaces: shipped files load, genomes round-trip through subnets, depth resizes every
per-block list, and a broken space file is a one-line error."""

import random

import pytest

from neurojoule.search.space import load_space, parse_space, space_names


@pytest.mark.parametrize("name", space_names())
def test_every_subnet_round_trips_through_its_genome(name):
    space = load_space(name)
    rng = random.Random(1)
    for _ in range(200):
        genome = space.sample(rng)
        subnet = space.decode(genome)
        assert space.decode(space.encode(subnet)) == subnet
        for gene in space.per_block:
            assert len(subnet[gene]) == subnet["depth"]
    for largest in (True, False):
        extreme = space.extreme(largest)
        assert space.decode(space.encode(extreme)) == extreme


def test_the_published_space_is_the_papers():
    space = load_space("spikformer-published")
    assert space.model == "spikformer-4-384"
    assert space.shared["embed_dim"].values == (192, 240, 336, 384)
    assert space.shared["steps"].values == (2, 3, 4, 5, 6)
    assert space.depth.values == (2, 3, 4)
    assert space.per_block["heads"].values == (6, 12)
    assert space.per_block["mlp_ratio"].values == (3.0, 3.5, 4.0)
    thresholds = space.per_block["v_threshold"].values
    assert thresholds == pytest.approx([0.6 + 0.2 * i for i in range(8)])
    assert space.per_block["tau"].values == (1.25, 2.0, 10.0)


def test_genomes_that_differ_beyond_their_depth_are_one_subnet():
    space = load_space("spikformer-fmnist-cpu")
    genome = space.encode(space.extreme(largest=False))  # depth 1
    other = {**genome, "heads.2": 4, "tau.1": 10.0}
    assert space.decode(other) == space.decode(genome)
    deeper = space.decode({**genome, "depth": 3})
    assert [len(deeper[g]) for g in ("heads", "mlp_ratio", "v_threshold", "tau")] == [3] * 4


def test_the_hand_designed_model_is_in_the_cpu_space():
    space = load_space("spikformer-fmnist-cpu")
    hand = {"embed_dim": 128, "steps": 4, "depth": 2, "heads": (4, 4), "mlp_ratio": (4.0, 4.0)}
    hand |= {"v_threshold": (1.0, 1.0), "tau": (2.0, 2.0)}
    space.check(hand)


GOOD = {
    "model": "spikformer",
    "shared": {"embed_dim": [64, 128], "steps": [2, 4]},
    "depth": [1, 2],
    "per_block": {"heads": [2, 4], "tau": {"real": [1.0, 4.0]}},
}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"width": [1]}, "unknown space keys \\['width'\\]"),
        ({"shared": {"embed_dim": []}}, "embed_dim: an empty list of choices"),
        ({"shared": {"embed_dim": [64, 66]}}, "embed_dim 66 is not divisible by heads \\[4\\]"),
        ({"shared": {"embed_dim": [60]}, "per_block": {"heads": [2]}}, "not divisible by 8"),
        ({"per_block": {"heads": [2], "size": [1]}}, "unknown per_block genes \\['size'\\]"),
        ({"model": "no-such-model"}, "unknown model 'no-such-model'"),
        ({"depth": "deep"}, "depth: expected a list of choices"),
        ({"depth": [0, 1]}, "depth must be at least 1"),
        ({"per_block": {"heads": [2], "tau": [0.5]}}, "tau is a time constant >= 1"),
        ({"shared": {"steps": [2, 2.5]}}, "steps: expected a list of integers"),
        ({"per_block": {"heads": [2], "mlp_ratio": [float("nan")]}}, "finite numbers"),
        ({"per_block": {"heads": [2], "tau": {"real": [4.0, 1.0]}}}, "tau: expected a list"),
    ],
)
def test_a_broken_space_is_a_one_line_error(change, message):
    with pytest.raises(ValueError, match=message) as caught:
        parse_space({**GOOD, **change})
    assert "\n" not in str(caught.value)


def test_a_space_file_that_is_not_a_mapping_names_the_file(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="space.yaml: a space is a mapping"):
        load_space(path)
    path.write_text("model: [unclosed\n")
    with pytest.raises(ValueError, match="space.yaml is not valid YAML"):
        load_space(path)
    with pytest.raises(ValueError, match="no space 'nope'"):
        load_space("nope")
