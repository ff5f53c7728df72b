"""Search spaces as data: YAML files naming a registry model and the values each gene takes.

    model: spikformer            # the registry model; its other options stay as registered
    shared:                      # one value for the whole network
      embed_dim: [64, 96, 128]
      steps: [2, 3, 4]
    depth: [1, 2, 3]             # blocks
    per_block:                   # one value per block
      heads: [2, 4]
      mlp_ratio: [3.0, 3.5, 4.0]
      v_threshold: [0.6, 0.8, 1.0, 1.2]
      tau: [1.25, 2.0, 10.0]

A gene takes a list of choices, or `{int: [low, high]}` / `{real: [low, high]}` (bounds
included). A genome holds every gene, per-block genes once per block up to the largest depth
(`heads.0`, `heads.1`, ...); decoding keeps the first `depth` of each per-block list, so a
depth change always resizes every per-block list, and genomes that differ only in blocks
beyond their depth decode to the same subnet (the evaluation cache keys on the subnet).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

SHARED_GENES = ("embed_dim", "steps")
BLOCK_GENES = ("heads", "mlp_ratio", "v_threshold", "tau")
NEURON_GENES = ("v_threshold", "tau")  # the rest set the network's size
# the subnet's neuron genes when a size extreme is asked for: the hand-designed values
NEURON_DEFAULTS = {"v_threshold": 1.0, "tau": 2.0}
SPACE_KEYS = ("model", "shared", "depth", "per_block")


@dataclass(frozen=True)
class Gene:
    """One searchable value: a list of choices, or an integer or real range (bounds in)."""

    name: str
    kind: str  # "choice", "int" or "real"
    values: tuple  # the choices, or (low, high)

    def sample(self, rng: random.Random):
        if self.kind == "choice":
            return rng.choice(self.values)
        low, high = self.values
        return rng.randint(low, high) if self.kind == "int" else rng.uniform(low, high)

    def extreme(self, largest: bool):
        return max(self.values) if largest else min(self.values)

    def nearest(self, value: float):
        if self.kind == "choice":
            return min(self.values, key=lambda choice: abs(choice - value))
        low, high = self.values
        clipped = min(max(value, low), high)
        return round(clipped) if self.kind == "int" else clipped

    def contains(self, value) -> bool:
        if self.kind == "choice":
            return value in self.values
        low, high = self.values
        return _is_number(value) and low <= value <= high


class Space:
    """A search space: its model, genes, and the mapping genome <-> subnet options."""

    def __init__(self, model: str, shared: dict[str, Gene], depth: Gene, per_block: dict):
        self.model, self.shared, self.depth, self.per_block = model, shared, depth, per_block
        self.max_depth = int(depth.extreme(largest=True))

    @property
    def genes(self) -> list[Gene]:
        """Every gene of a genome, in a fixed order."""
        block = [
            Gene(f"{name}.{i}", gene.kind, gene.values)
            for name, gene in self.per_block.items()
            for i in range(self.max_depth)
        ]
        return [*self.shared.values(), self.depth, *block]

    def decode(self, genome: Mapping) -> dict:
        """The subnet (model options) a genome stands for."""
        missing = [gene.name for gene in self.genes if gene.name not in genome]
        if missing:
            raise ValueError(f"genome lacks genes {missing}")
        depth = int(genome["depth"])
        subnet = {name: genome[name] for name in self.shared}
        subnet["depth"] = depth
        for name in self.per_block:
            subnet[name] = tuple(genome[f"{name}.{i}"] for i in range(depth))
        return subnet

    def encode(self, subnet: Mapping) -> dict:
        """A genome for a subnet; blocks beyond its depth take each gene's first value."""
        self.check(subnet)
        genome = {name: subnet[name] for name in self.shared}
        genome["depth"] = subnet["depth"]
        for name, gene in self.per_block.items():
            values = list(subnet[name])
            filler = gene.values[0]
            for i in range(self.max_depth):
                genome[f"{name}.{i}"] = values[i] if i < len(values) else filler
        return genome

    def check(self, subnet: Mapping) -> None:
        """ValueError unless `subnet` is a member of this space."""
        expected = {*self.shared, "depth", *self.per_block}
        if set(subnet) != expected:
            raise ValueError(f"a subnet has the options {sorted(expected)}, got {sorted(subnet)}")
        depth = subnet["depth"]
        if not self.depth.contains(depth):
            raise ValueError(f"depth {depth!r} is not in the space's {list(self.depth.values)}")
        for name, gene in self.shared.items():
            if not gene.contains(subnet[name]):
                raise ValueError(f"{name} {subnet[name]!r} is not in the space")
        for name, gene in self.per_block.items():
            values = subnet[name]
            if len(values) != depth or not all(gene.contains(v) for v in values):
                raise ValueError(f"{name} {values!r} is not {depth} values of the space's {name}")

    def sample(self, rng: random.Random) -> dict:
        """A uniformly drawn genome."""
        return {gene.name: gene.sample(rng) for gene in self.genes}

    def extreme(self, largest: bool) -> dict:
        """The largest or smallest subnet: every size gene at its extreme, the neuron genes
        nearest the hand-designed values (threshold 1, tau 2)."""

        def value(gene: Gene, base: str):
            if base in NEURON_GENES:
                return gene.nearest(NEURON_DEFAULTS[base])
            return gene.extreme(largest)

        genome = {gene.name: value(gene, gene.name.split(".")[0]) for gene in self.genes}
        return self.decode(genome)

    def supernet_options(self) -> dict:
        """Model options of the supernet: the largest value of every size gene."""
        options = {name: gene.extreme(largest=True) for name, gene in self.shared.items()}
        options["depth"] = self.max_depth
        for name, gene in self.per_block.items():
            if name not in NEURON_GENES:
                options[name] = gene.extreme(largest=True)
        return options


def space_names() -> list[str]:
    return sorted(p.stem for p in _space_dir().glob("*.yaml"))


def _space_dir() -> Path:
    return Path(str(resources.files("neurojoule.search") / "spaces"))


def load_space(name_or_path: str | Path) -> Space:
    """A space by name (see space_names()) or from a YAML file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = _space_dir() / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ValueError(
            f"no space {str(name_or_path)!r}: expected a file or one of {space_names()}"
        )
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid YAML: {' '.join(str(error).split())}") from None
    try:
        return parse_space(values)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def parse_space(values: object) -> Space:
    """A Space from the mapping a space file holds; a one-line ValueError for anything else."""
    from neurojoule.models import model_entry

    if not isinstance(values, Mapping):
        raise ValueError(f"a space is a mapping with keys {list(SPACE_KEYS)}, got {_kind(values)}")
    unknown = sorted(set(map(str, values)) - set(SPACE_KEYS))
    if unknown:
        raise ValueError(f"unknown space keys {unknown}; expected {list(SPACE_KEYS)}")
    model = values.get("model")
    if not isinstance(model, str):
        raise ValueError(f"model must name a registry model, got {_kind(model)}")
    model_entry(model)  # a ValueError naming the known models
    shared = _genes(values.get("shared"), SHARED_GENES, "shared")
    per_block = _genes(values.get("per_block"), BLOCK_GENES, "per_block")
    depth = _gene("depth", values.get("depth"))
    space = Space(model, shared, depth, per_block)
    _check_sizes(space)
    return space


def _genes(section: object, known: tuple[str, ...], where: str) -> dict[str, Gene]:
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ValueError(f"{where} must map gene names to values, got {_kind(section)}")
    unknown = sorted(set(map(str, section)) - set(known))
    if unknown:
        raise ValueError(f"unknown {where} genes {unknown}; expected some of {list(known)}")
    return {name: _gene(name, section[name]) for name in known if name in section}


def _gene(name: str, spec: object) -> Gene:
    integral = name in ("embed_dim", "steps", "depth", "heads")
    if isinstance(spec, list):
        if not spec:
            raise ValueError(f"{name}: an empty list of choices")
        if not all(_is_number(v) and (not integral or float(v).is_integer()) for v in spec):
            what = "integers" if integral else "finite numbers"
            raise ValueError(f"{name}: expected a list of {what}, got {spec!r}")
        if len(set(spec)) != len(spec):
            raise ValueError(f"{name}: choices repeat in {spec!r}")
        return Gene(name, "choice", tuple(int(v) if integral else float(v) for v in spec))
    if isinstance(spec, Mapping) and len(spec) == 1:
        ((kind, bounds),) = spec.items()
        if kind in ("int", "real") and isinstance(bounds, list) and len(bounds) == 2:
            low, high = bounds
            if _is_number(low) and _is_number(high) and low <= high:
                if kind == "int" and float(low).is_integer() and float(high).is_integer():
                    return Gene(name, "int", (int(low), int(high)))
                if kind == "real" and not integral:
                    return Gene(name, "real", (float(low), float(high)))
    raise ValueError(
        f"{name}: expected a list of choices or {{int: [low, high]}} / {{real: [low, high]}}, "
        f"got {spec!r}"
    )


def _check_sizes(space: Space) -> None:
    """Every size the space can draw builds: positive sizes, dims divisible by every head
    count (and by 8, for Spikformer's patch splitting)."""
    for gene in [space.depth, *space.shared.values(), *space.per_block.values()]:
        if gene.name in NEURON_GENES or gene.name == "mlp_ratio":
            low = gene.extreme(largest=False)
            if not low > 0:
                raise ValueError(f"{gene.name} must be positive, got {low}")
        elif gene.extreme(largest=False) < 1:
            raise ValueError(f"{gene.name} must be at least 1, got {gene.extreme(largest=False)}")
        if gene.name == "tau" and gene.extreme(largest=False) < 1:
            raise ValueError(f"tau is a time constant >= 1, got {gene.extreme(largest=False)}")
    dims = space.shared.get("embed_dim")
    heads = space.per_block.get("heads")
    if dims is None or heads is None:
        return
    if dims.kind != "choice" or heads.kind != "choice":
        raise ValueError("embed_dim and heads must be lists of choices (each dim is checked)")
    for dim in dims.values:
        bad = [h for h in heads.values if dim % h]
        if bad or dim % 8:
            raise ValueError(
                f"embed_dim {dim} is not divisible by "
                f"{'heads ' + str(bad) if bad else '8 (the patch splitting)'}"
            )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _kind(value: object) -> str:
    return "nothing" if value is None else type(value).__name__
