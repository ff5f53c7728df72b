"""The published Auto-Spikformer evolution (after AutoFormer's) as a plain ask-tell loop.

Generation 1 is a population of random subnets. Every later generation takes as parents the
top k of all subnets evaluated so far, ranked by a fitness (the AEB fitness or a user
weighting, objectives.Fitness), and makes:

- mutations: a random parent; its depth is redrawn with probability `shared_probability`
  (0.4) and blocks that a deeper depth adds get freshly drawn values of every per-block gene;
  then each per-block gene of each block within the depth is redrawn with probability
  `gene_probability` (0.2), and each shared gene (embed dim, T) with `shared_probability`;
- uniform crossovers: two random parents, each gene from one of them with equal
  probability (genomes hold every per-block gene up to the largest depth, so parents of
  different depths cross too; the published code redraws parents until their depths match);
- random subnets for the rest of the population.

As published, a candidate whose subnet was already evaluated (or is already in the
generation) is refused and drawn again, at most 10 tries per wanted candidate. The published
budgets are population 50, 20 generations, top 10, 25 mutations and 25 crossovers.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

from neurojoule.search.evaluator import subnet_key
from neurojoule.search.objectives import Objectives
from neurojoule.search.space import Space


@dataclass(frozen=True)
class EvolutionSettings:
    population: int = 50
    generations: int = 20
    top_k: int = 10
    mutations: int = 25
    crossovers: int = 25
    gene_probability: float = 0.2
    shared_probability: float = 0.4  # depth and the shared genes (embed dim, T)

    def __post_init__(self):
        for name in ("population", "generations", "top_k"):
            if getattr(self, name) < 1:
                raise ValueError(f"evolution {name} must be >= 1, got {getattr(self, name)}")
        if self.mutations < 0 or self.crossovers < 0:
            raise ValueError("evolution mutations and crossovers must be >= 0")
        if self.mutations + self.crossovers > self.population:
            raise ValueError(
                f"{self.mutations} mutations + {self.crossovers} crossovers exceed the "
                f"population of {self.population}"
            )
        for name in ("gene_probability", "shared_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")

    @classmethod
    def scaled(cls, population: int, generations: int, **changes) -> EvolutionSettings:
        """The published proportions for another population: top k a fifth of it (at least
        2), a half of it mutations and the other half crossovers (50 -> 10, 25, 25)."""
        values = dict(
            population=population,
            generations=generations,
            top_k=max(2, round(population / 5)),
            mutations=population // 2,
            crossovers=population - population // 2,
        )
        values.update({k: v for k, v in changes.items() if v is not None})
        return cls(**values)


class Evolution:
    """Ask-tell evolution over `space`, ranking by `fitness`, seeded with `seed`."""

    def __init__(
        self,
        space: Space,
        settings: EvolutionSettings,
        fitness: Callable[[Objectives], float],
        seed: int = 0,
    ):
        self.space, self.settings, self.fitness = space, settings, fitness
        self.rng = random.Random(seed)
        self.generation = 0  # generations told so far
        self.archive: list[tuple[dict, Objectives, float]] = []  # every subnet told, in order
        self._visited: set[str] = set()

    @property
    def done(self) -> bool:
        return self.generation >= self.settings.generations

    def ask(self) -> list[dict]:
        """The genomes of the next generation (all new subnets; fewer only where the space
        has run out of them)."""
        s = self.settings
        batch: list[dict] = []
        seen = set(self._visited)
        if self.generation > 0:
            parents = [genome for genome, _, _ in self.top(s.top_k)]
            self._fill(batch, seen, s.mutations, lambda: self.mutate(self.rng.choice(parents)))
            self._fill(batch, seen, s.crossovers, lambda: self.crossover(parents))
        self._fill(batch, seen, s.population - len(batch), lambda: self.space.sample(self.rng))
        return batch

    def _fill(self, batch: list, seen: set, wanted: int, make: Callable[[], dict]) -> None:
        added = 0
        for _ in range(10 * wanted):
            if added == wanted:
                return
            genome = make()
            key = subnet_key(self.space.decode(genome))
            if key not in seen:
                seen.add(key)
                batch.append(genome)
                added += 1

    def tell(self, genomes: Sequence[Mapping], objectives: Sequence[Objectives]) -> None:
        if len(genomes) != len(objectives):
            raise ValueError(f"told {len(genomes)} genomes with {len(objectives)} objectives")
        for genome, result in zip(genomes, objectives, strict=True):
            self._add(dict(genome), result)
        self.generation += 1

    def _add(self, genome: dict, result: Objectives) -> None:
        self.archive.append((genome, result, self.fitness(result)))
        self._visited.add(subnet_key(self.space.decode(genome)))

    def top(self, k: int) -> list[tuple[dict, Objectives, float]]:
        """The k fittest subnets told so far (earlier first among equals)."""
        return sorted(self.archive, key=lambda entry: -entry[2])[:k]

    def mutate(self, parent: Mapping) -> dict:
        s, space, rng = self.settings, self.space, self.rng
        child = dict(parent)
        depth = int(child["depth"])
        if rng.random() < s.shared_probability:
            new_depth = int(space.depth.sample(rng))
            for block in range(depth, new_depth):  # blocks the new depth adds: fresh values
                for name, gene in space.per_block.items():
                    child[f"{name}.{block}"] = gene.sample(rng)
            child["depth"] = depth = new_depth
        for name, gene in space.per_block.items():
            for block in range(depth):
                if rng.random() < s.gene_probability:
                    child[f"{name}.{block}"] = gene.sample(rng)
        for name, gene in space.shared.items():
            if rng.random() < s.shared_probability:
                child[name] = gene.sample(rng)
        return child

    def crossover(self, parents: Sequence[Mapping]) -> dict:
        first, second = self.rng.choice(parents), self.rng.choice(parents)
        return {g.name: self.rng.choice((first[g.name], second[g.name])) for g in self.space.genes}

    def step(self, evaluate: Callable[[list[dict]], list[Objectives]]) -> tuple[list, list]:
        """One generation: ask, evaluate, tell. Returns the genomes and their objectives."""
        genomes = self.ask()
        results = evaluate(genomes)
        self.tell(genomes, results)
        return genomes, results

    def state(self) -> dict:
        """Everything the next generation depends on, as JSON-ready data."""
        version, internal, gauss = self.rng.getstate()
        return {
            "settings": asdict(self.settings),
            "generation": self.generation,
            "rng": [version, list(internal), gauss],
            "archive": [
                {"genome": genome, "objectives": result.to_dict()}
                for genome, result, _ in self.archive
            ],
        }

    def load_state(self, state: Mapping) -> None:
        if state["settings"] != asdict(self.settings):
            raise ValueError(
                f"the saved evolution has settings {state['settings']}, not {asdict(self.settings)}"
            )
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.generation = int(state["generation"])
        self.archive, self._visited = [], set()
        for entry in state["archive"]:
            self._add(dict(entry["genome"]), Objectives.from_dict(entry["objectives"]))
