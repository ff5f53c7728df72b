"""NSGA-II from pymoo over a mixed search space (choices, integers, reals).

pymoo's split: a Problem (`SubnetProblem`: its _evaluate decodes the genomes and asks the
evaluator for their objectives, all minimised: any of error, energy, params, steps), an
algorithm (pymoo's mixed-variable genetic algorithm with NSGA-II's parts: rank-and-crowding
survival, binary tournaments by domination and crowding, duplicates removed, here by decoded
subnet) and a budget as termination (a number of generations). pymoo draws every random
number from the algorithm's own generator (numpy PCG64), so a run is a function of its seed,
and the state after a generation (population, rank and crowding, generator state) is all
that the next generation depends on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence

import numpy as np
from pymoo.algorithms.moo.nsga2 import binary_tournament
from pymoo.core.duplicate import DuplicateElimination
from pymoo.core.mixed import MixedVariableGA, MixedVariableMating
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.core.variable import Choice, Integer, Real
from pymoo.operators.selection.tournament import TournamentSelection
from pymoo.operators.survival.rank_and_crowding import RankAndCrowding
from pymoo.termination.max_gen import MaximumGenerationTermination
from pymoo.util.display.multi import MultiObjectiveOutput

from neurojoule.search.evaluator import Evaluator, subnet_key
from neurojoule.search.objectives import Objectives, check_objectives
from neurojoule.search.space import Gene, Space


def pymoo_variables(space: Space) -> dict:
    """pymoo variables of the genes: Choice, Integer or Real, in the space's gene order."""
    variables = {}
    for gene in space.genes:
        if gene.kind == "choice":
            variables[gene.name] = Choice(options=list(gene.values))
        elif gene.kind == "int":
            variables[gene.name] = Integer(bounds=gene.values)
        else:
            variables[gene.name] = Real(bounds=gene.values)
    return variables


def python_genome(space: Space, x: Mapping) -> dict:
    """A pymoo individual's variables as a genome of Python numbers: a choice as the space's
    own value (3.0 stays a float, 64 an int), an integer as int, a real as float."""
    genome = {}
    for gene in space.genes:
        genome[gene.name] = _python_value(gene, x[gene.name])
    return genome


def _python_value(gene: Gene, value):
    if gene.kind == "choice":
        for choice in gene.values:
            if choice == value:
                return choice
        raise ValueError(f"{gene.name}: {value!r} is not among {list(gene.values)}")
    if gene.kind == "int":
        return int(round(float(value)))
    return float(value)


class SubnetProblem(Problem):
    """The search as a pymoo Problem: genomes in, the evaluator's objectives out."""

    def __init__(self, space: Space, evaluator: Evaluator, objectives: Sequence[str]):
        self.space, self.evaluator = space, evaluator
        self.objective_names = check_objectives(objectives)
        self.last: list[Objectives] = []  # the objectives of the last call
        super().__init__(vars=pymoo_variables(space), n_obj=len(self.objective_names))

    def _evaluate(self, X, out, *args, **kwargs):
        genomes = [python_genome(self.space, x) for x in X]
        results = self.last = self.evaluator.objectives(genomes)
        out["F"] = np.array(
            [[r.value(name) for name in self.objective_names] for r in results], dtype=float
        )


class SubnetDuplicates(DuplicateElimination):
    """Individuals are duplicates when their genomes decode to the same subnet."""

    def __init__(self, space: Space):
        super().__init__()
        self.space = space

    def _key(self, individual) -> str:
        return subnet_key(self.space.decode(python_genome(self.space, individual.X)))

    def _do(self, pop, other, is_duplicate):
        seen = set() if other is None else {self._key(o) for o in other}
        for i, individual in enumerate(pop):
            key = self._key(individual)
            if key in seen:
                is_duplicate[i] = True
            else:
                seen.add(key)
        return is_duplicate


class MixedNSGA2(MixedVariableGA):
    """pymoo's mixed-variable GA made NSGA-II: rank-and-crowding survival, also after the
    initial population, and binary tournaments by domination, then crowding distance."""

    tournament_type = "comp_by_dom_and_crowding"  # what pymoo's binary_tournament reads

    def __init__(self, space: Space, pop_size: int, **kwargs):
        duplicates = SubnetDuplicates(space)
        mating = MixedVariableMating(
            selection=TournamentSelection(func_comp=binary_tournament),
            eliminate_duplicates=duplicates,
        )
        super().__init__(
            pop_size=pop_size,
            mating=mating,
            eliminate_duplicates=duplicates,
            survival=RankAndCrowding(),
            output=MultiObjectiveOutput(),
            advance_after_initial_infill=True,
            **kwargs,
        )


class NSGA2Search:
    """NSGA-II over `space` for `generations` generations of `population` subnets, one
    generation per step(); its state can be saved after any generation and loaded into a
    fresh search of the same settings to continue it exactly."""

    def __init__(
        self,
        space: Space,
        evaluator: Evaluator,
        objectives: Sequence[str] = ("error", "energy"),
        population: int = 50,
        generations: int = 20,
        seed: int = 0,
    ):
        if population < 2 or generations < 1:
            raise ValueError(
                f"NSGA-II needs a population >= 2 and generations >= 1, got {population} "
                f"and {generations}"
            )
        self.space, self.seed = space, seed
        self.population, self.generations = population, generations
        self.problem = SubnetProblem(space, evaluator, objectives)
        self.algorithm = MixedNSGA2(space, population)
        self.algorithm.setup(
            self.problem, termination=MaximumGenerationTermination(generations), seed=seed
        )
        self.generation = 0
        self.exhausted = False  # the mating found no new subnet: the run ended early

    @property
    def done(self) -> bool:
        return self.exhausted or self.generation >= self.generations

    def step(self, evaluate=None) -> tuple[list[dict], list[Objectives]]:
        """One generation: pymoo asks, the problem evaluates, pymoo tells. Returns the new
        genomes and their objectives. (`evaluate` is unused: the problem evaluates.)"""
        algorithm = self.algorithm
        offspring = algorithm.ask()
        if offspring is None or len(offspring) == 0:
            self.exhausted = True
            return [], []
        genomes = [python_genome(self.space, x) for x in offspring.get("X")]
        for individual, genome in zip(offspring, genomes, strict=True):
            individual.X = genome  # Python numbers, as a resumed population holds them
        algorithm.evaluator.eval(self.problem, offspring)
        results = self.problem.last
        algorithm.tell(infills=offspring)
        self.generation += 1
        return genomes, results

    def front(self) -> list[dict]:
        """The genomes of the population's first front (rank 0)."""
        pop = self.algorithm.pop
        return [dict(ind.X) for ind in pop if ind.get("rank") == 0]

    def state(self) -> dict:
        """The population (genomes with rank and crowding; objectives come from the
        evaluator's cache), the generator state and the generation count."""
        pop = self.algorithm.pop
        members = []
        if self.generation > 0:
            for individual in pop:
                crowding = float(individual.get("crowding"))
                members.append(
                    {
                        "genome": dict(individual.X),
                        "rank": int(individual.get("rank")),
                        "crowding": None if math.isinf(crowding) else crowding,
                    }
                )
        return {
            "settings": self._settings(),
            "generation": self.generation,
            "exhausted": self.exhausted,
            "rng": self.algorithm.random_state.bit_generator.state,
            "population": members,
        }

    def _settings(self) -> dict:
        return {
            "population": self.population,
            "generations": self.generations,
            "seed": self.seed,
            "objectives": list(self.problem.objective_names),
        }

    def load_state(self, state: Mapping) -> None:
        if state["settings"] != self._settings():
            raise ValueError(
                f"the saved NSGA-II search has settings {state['settings']}, not {self._settings()}"
            )
        self.generation = int(state["generation"])
        self.exhausted = bool(state["exhausted"])
        algorithm = self.algorithm
        if self.generation > 0:
            members = state["population"]
            pop = Population.new(X=[dict(m["genome"]) for m in members])
            algorithm.evaluator.eval(self.problem, pop)  # from the evaluator's cache
            pop.set("rank", np.array([m["rank"] for m in members]))
            crowding = [math.inf if m["crowding"] is None else m["crowding"] for m in members]
            pop.set("crowding", np.array(crowding, dtype=float))
            algorithm.pop = pop
            algorithm.is_initialized = True
            algorithm.n_iter = self.generation + 1  # pymoo counts the next generation
            algorithm.start_time = time.time()
            algorithm._set_optimum()
        algorithm.random_state.bit_generator.state = state["rng"]
