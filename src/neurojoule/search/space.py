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

Genes are the model's own options: a shared gene names any numeric or boolean field of the
model's config, a per-block gene a field that takes one value per block (a tuple). The
per-block gene `threshold_scale` is not an option: it multiplies the initial thresholds of
every LIF layer of its block (neuron.scale_neurons). `depth_option` names the option that
the depth sets (default `depth`; `n_layers` for SpikingSSM; null where no option does: the
length of the per-block tuples is the depth, as for the dense SNN's `hidden`, or the block
count is fixed, as the spiking MLP's four stages are, and `depth` takes one value).

A genome lists the genes in the order of the file (shared, depth, per-block), so two files
that list the same genes in another order are two spaces to a resume.

A gene takes a list of choices (numbers, or true/false for a boolean option), or
`{int: [low, high]}` / `{real: [low, high]}` (bounds included). A genome holds every gene,
per-block genes once per block up to the largest depth (`heads.0`, `heads.1`, ...);
decoding keeps the first `depth` of each per-block list, so a depth change always resizes
every per-block list, and genomes that differ only in blocks beyond their depth decode to
the same subnet (the evaluation cache keys on the subnet).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

# the genes of the weight-entangled supernet (models.elastic): Spikformer's
SUPERNET_GENES = ("embed_dim", "steps", "depth", "heads", "mlp_ratio", "v_threshold", "tau")
SCALE_GENES = {"threshold_scale": "threshold"}  # per-block gene -> neuron.scale_neurons key
# genes of the neurons rather than the size: a size extreme keeps them at the model's default
NEURON_GENES = ("v_threshold", "tau", "decay", *SCALE_GENES)
SPACE_KEYS = ("model", "shared", "depth", "depth_option", "per_block")


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
            flags = isinstance(self.values[0], bool)
            return isinstance(value, bool) == flags and value in self.values
        low, high = self.values
        return _is_number(value) and low <= value <= high


class Space:
    """A search space: its model, genes, and the mapping genome <-> subnet <-> model options.
    `defaults` holds the model's own value of each neuron gene (threshold_scale: 1)."""

    def __init__(
        self,
        model: str,
        shared: dict[str, Gene],
        depth: Gene,
        per_block: dict,
        depth_option: str | None = "depth",
        defaults: Mapping | None = None,
    ):
        self.model, self.shared, self.depth, self.per_block = model, shared, depth, per_block
        self.depth_option = depth_option
        self.defaults = dict(defaults or {})
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
        """The subnet a genome stands for."""
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

    def model_options(self, subnet: Mapping) -> dict:
        """The model options a subnet sets: its genes, the depth under `depth_option` (or
        none), without the neuron scales (see neuron_scales)."""
        options = {k: v for k, v in subnet.items() if k != "depth" and k not in SCALE_GENES}
        if self.depth_option is not None:
            options[self.depth_option] = subnet["depth"]
        return options

    def neuron_scales(self, subnet: Mapping) -> list[dict]:
        """Per block, the neuron.scale_neurons factors of its LIF layers ({} for none)."""
        return [
            {key: subnet[gene][block] for gene, key in SCALE_GENES.items() if gene in subnet}
            for block in range(subnet["depth"])
        ]

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
        nearest the model's own values (threshold 1, tau 2 for Spikformer)."""

        def value(gene: Gene, base: str):
            if base in NEURON_GENES and base in self.defaults:
                return gene.nearest(self.defaults[base])
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

    def is_elastic(self) -> bool:
        """Whether a weight-entangled supernet (models.elastic) can hold this space."""
        genes = {*self.shared, "depth", *self.per_block}
        return self.depth_option == "depth" and genes <= set(SUPERNET_GENES)


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
    if not isinstance(values, Mapping):
        raise ValueError(f"a space is a mapping with keys {list(SPACE_KEYS)}, got {_kind(values)}")
    unknown = sorted(set(map(str, values)) - set(SPACE_KEYS))
    if unknown:
        raise ValueError(f"unknown space keys {unknown}; expected {list(SPACE_KEYS)}")
    model = values.get("model")
    if not isinstance(model, str):
        raise ValueError(f"model must name a registry model, got {_kind(model)}")
    fields = model_fields(model)
    depth_option = values.get("depth_option", "depth")
    if depth_option is not None and fields.get(depth_option, (None,))[0] != "int":
        raise ValueError(
            f"depth_option must name an integer option of {model} or be null, got {depth_option!r}"
        )
    shared = _genes(values.get("shared"), fields, "shared", model)
    per_block = _genes(values.get("per_block"), fields, "per_block", model)
    depth = _gene("depth", values.get("depth"), "int")
    defaults = {name: fields[name][2] for name in NEURON_GENES if name in fields}
    defaults["threshold_scale"] = 1.0
    space = Space(model, shared, depth, per_block, depth_option, defaults)
    _check_sizes(space)
    return space


@functools.cache
def model_fields(model: str) -> dict[str, tuple[str, bool, object]]:
    """The searchable options of a registry model: name -> (kind "int", "real" or "bool",
    whether it takes one value per block, its value in the registered model)."""
    import torch

    from neurojoule.models import build_model, model_entry

    model_entry(model)  # a ValueError naming the known models
    with torch.device("meta"):
        config = getattr(build_model(model), "config", None)
    if not dataclasses.is_dataclass(config):
        raise ValueError(f"model {model} has no config of options to search")
    found = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        per_block = isinstance(value, tuple) or "tuple" in str(field.type)
        first = value[0] if isinstance(value, tuple) and value else value
        kind = {bool: "bool", int: "int", float: "real"}.get(type(first))
        if kind is not None:
            found[field.name] = (kind, per_block, first)
    return found


def _genes(section: object, fields: dict, where: str, model: str) -> dict[str, Gene]:
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ValueError(f"{where} must map gene names to values, got {_kind(section)}")
    genes = {}
    for name in map(str, section):
        known = fields.get(name)
        if name in SCALE_GENES and where == "per_block":
            known = ("real", True, 1.0)
        if known is None or (where == "per_block" and not known[1]):
            takes = "per-block options (or threshold_scale)" if where == "per_block" else "options"
            choices = [n for n, f in fields.items() if where != "per_block" or f[1]]
            raise ValueError(
                f"unknown {where} genes ['{name}']: {model} takes the numeric or boolean "
                f"{takes} {choices}"
            )
        genes[name] = _gene(name, section[name], known[0])
    return genes


def _gene(name: str, spec: object, kind: str) -> Gene:
    integral = kind == "int"
    if isinstance(spec, list) and kind == "bool":
        if not spec or not all(isinstance(v, bool) for v in spec) or len(set(spec)) != len(spec):
            raise ValueError(f"{name}: expected a list of distinct true/false, got {spec!r}")
        return Gene(name, "choice", tuple(spec))
    if isinstance(spec, list):
        if not spec:
            raise ValueError(f"{name}: an empty list of choices")
        if not all(_is_number(v) and (not integral or float(v).is_integer()) for v in spec):
            what = "integers" if integral else "finite numbers"
            raise ValueError(f"{name}: expected a list of {what}, got {spec!r}")
        if len(set(spec)) != len(spec):
            raise ValueError(f"{name}: choices repeat in {spec!r}")
        return Gene(name, "choice", tuple(int(v) if integral else float(v) for v in spec))
    if isinstance(spec, Mapping) and len(spec) == 1 and kind != "bool":
        ((bound_kind, bounds),) = spec.items()
        if bound_kind in ("int", "real") and isinstance(bounds, list) and len(bounds) == 2:
            low, high = bounds
            if _is_number(low) and _is_number(high) and low <= high:
                if bound_kind == "int" and float(low).is_integer() and float(high).is_integer():
                    return Gene(name, "int", (int(low), int(high)))
                if bound_kind == "real" and not integral:
                    return Gene(name, "real", (float(low), float(high)))
    raise ValueError(
        f"{name}: expected a list of choices or {{int: [low, high]}} / {{real: [low, high]}}, "
        f"got {spec!r}"
    )


def _check_sizes(space: Space) -> None:
    """Every size the space can draw builds: positive sizes, dims divisible by every head
    count (and by 8, for Spikformer's patch splitting)."""
    for gene in [space.depth, *space.shared.values(), *space.per_block.values()]:
        low = gene.extreme(largest=False)
        if isinstance(low, bool):
            continue
        if gene.name in NEURON_GENES or gene.name == "mlp_ratio":
            if not low > 0:
                raise ValueError(f"{gene.name} must be positive, got {low}")
        elif isinstance(low, int) and low < 1:
            raise ValueError(f"{gene.name} must be at least 1, got {low}")
        if gene.name == "tau" and low < 1:
            raise ValueError(f"tau is a time constant >= 1, got {low}")
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
