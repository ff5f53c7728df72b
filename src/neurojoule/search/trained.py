"""Architecture search by short training, for the families without a supernet (SpikingSSM,
the spiking MLP; any registry model whose options a space names).

Every candidate is trained from scratch with the same budget (a number of optimizer steps,
the schedule fitted to it) as an ordinary training run in OUT/candidates/ID, then measured
like any other subnet: accuracy and energy on the search's validation batches, from its best
checkpoint. The run's own final test (its test split, never read by the search) is kept in
the record, so that the front can be reported on test data.

Hopeless candidates stop early: a learning-curve cut (the median stopping rule) validates
each candidate at half its budget and stops it there when its validation accuracy is below
the median of the candidates of earlier generations at the same step (once at least
`min_history` of them exist). The threshold only depends on earlier generations, so a
resumed search cuts the same candidates. A search killed at any moment resumes: finished
candidates are read back from their folders, an interrupted one resumes from its last
checkpoint (bit for bit, train.fit), and the search state from search.json (runner).

Per-block neuron scales (`threshold_scale`) multiply the initial thresholds of the LIF
layers of their block before training (written as the run's init checkpoint).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import shutil
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from neurojoule.neuron import lif_layers, set_lif_mode
from neurojoule.neuron.lif_layer import scale_neurons
from neurojoule.search.evaluator import Evaluator, plain_subnet, subnet_key
from neurojoule.search.objectives import Objectives, measure_objectives
from neurojoule.search.space import Space
from neurojoule.train.config import TrainConfig
from neurojoule.util.files import atomic_write_text, atomic_writer

CANDIDATES, RECORD, PROXY = "candidates", "candidate.json", "proxy.json"


@dataclass(frozen=True)
class TrainingBudget:
    """What every candidate gets: `steps` optimizer steps, the learning-curve cut at half of
    them (`cut`) once `min_history` candidates of earlier generations were measured, and with
    `proxy` its SNASNet score at initialisation (search.proxy) on the first training batch."""

    steps: int
    cut: bool = True
    min_history: int = 4
    proxy: bool = False

    def __post_init__(self):
        if self.steps < 2:
            raise ValueError(f"a training budget needs at least 2 steps, got {self.steps}")
        if self.min_history < 1:
            raise ValueError(f"min_history must be >= 1, got {self.min_history}")

    @property
    def cut_step(self) -> int:
        return self.steps // 2


def candidate_config(space: Space, base: TrainConfig, subnet: Mapping, steps: int) -> TrainConfig:
    """The training config of a candidate: the base config with the subnet's model options
    on top and a schedule of `steps` steps."""
    options = {**base.model_options, **plain_subnet(space.model_options(subnet))}
    optim = dataclasses.replace(base.optim, max_steps=steps, epochs=steps)
    return dataclasses.replace(base, model=space.model, model_options=options, optim=optim)


def block_layers(model: nn.Module, depth: int) -> list[list[str]]:
    """The LIF layers of each block: those under the i-th entry of the model's first module
    list of `depth` entries (SpikingSSM's layers, Spikformer's blocks, the MLP's stages), or
    the i-th LIF layer where the model has `depth` of them and no such list (the dense SNN)."""
    names = list(lif_layers(model))
    for prefix, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == depth:
            return [[n for n in names if n.startswith(f"{prefix}.{i}.")] for i in range(depth)]
    if len(names) == depth:
        return [[name] for name in names]
    raise ValueError(
        f"{type(model).__name__} has neither a list of {depth} blocks nor {depth} LIF layers: "
        "cannot tell which neurons a block's threshold_scale scales"
    )


class CandidateTrainer:
    """Trains the candidates of a search into `folder`/candidates and reads them back."""

    def __init__(self, space: Space, base: TrainConfig, budget: TrainingBudget, folder: Path):
        self.space, self.base, self.budget = space, base, budget
        self.folder = Path(folder) / CANDIDATES
        self.threshold: float | None = None  # the cut's, set for each generation

    def run_folder(self, subnet: Mapping) -> Path:
        return self.folder / hashlib.sha256(subnet_key(subnet).encode()).hexdigest()[:16]

    def trained(self, subnet: Mapping) -> tuple[nn.Module, dict]:
        """The candidate's trained model (its best checkpoint, eval mode, exact LIF) and its
        training record; trained now unless its folder holds a finished run."""
        from neurojoule.train.checkpoints import load_checkpoint
        from neurojoule.train.fit import CurveCut, train

        run = self.run_folder(subnet)
        record_path = run / RECORD
        if not record_path.is_file():
            config = candidate_config(self.space, self.base, subnet, self.budget.steps)
            resume = (run / "checkpoints" / "last.ckpt").is_file()
            if not resume:
                shutil.rmtree(run, ignore_errors=True)  # a start killed before a checkpoint
                config = self._start(config, subnet, run)
            threshold = self.threshold if self.budget.cut else None
            cut = CurveCut(self.budget.cut_step, threshold)
            result = train(config, run, resume=resume, progress=False, cut=cut)
            timing = json.loads((run / "timing.json").read_text())
            record = {
                "run": run.name,
                "checkpoint": str(result.tested_checkpoint.relative_to(run)),
                "steps": self.budget.cut_step if cut.cut else self.budget.steps,
                "cut": cut.cut,
                "cut_accuracy": cut.accuracy,
                "test_accuracy": result.test_metrics.get("test/acc"),
                "train_seconds": timing.get("train_seconds"),
                **_read_json(run / PROXY),
            }
            atomic_write_text(record_path, json.dumps(record, indent=2))
        record = json.loads(record_path.read_text())
        config, _, model = load_checkpoint(run / record["checkpoint"])
        if lif_layers(model):
            set_lif_mode(model, config.eval_lif_mode)
        return model, record

    def _start(self, config: TrainConfig, subnet: Mapping, run: Path) -> TrainConfig:
        """Before a candidate's first step: its proxy score (with `proxy`), and `config`
        starting from a fresh model (drawn with the run's seed) with its blocks' neuron
        scales applied, where the subnet scales any."""
        scales = self.space.neuron_scales(subnet)
        scaled = any(value != 1.0 for block in scales for value in block.values())
        if not (scaled or self.budget.proxy):
            return config
        from neurojoule.search.proxy import hamming_score
        from neurojoule.train.fit import seed_everything
        from neurojoule.train.module import build_model_for_task
        from neurojoule.train.splits import make_splits

        seed_everything(config.seed)
        train_set, _, _, info = make_splits(config)
        model = build_model_for_task(config, info)
        if scaled:
            layers = zip(block_layers(model, subnet["depth"]), scales, strict=True)
            scale_neurons(model, {name: block for names, block in layers for name in names})
        run.mkdir(parents=True, exist_ok=True)
        if self.budget.proxy:
            inputs = next(iter(DataLoader(train_set, config.optim.batch_size)))[0]
            fresh = copy.deepcopy(model)  # scoring updates batch-norm statistics
            score = hamming_score(fresh, inputs)
            score = score if math.isfinite(score) else None  # -inf: inputs coded alike
            atomic_write_text(run / PROXY, json.dumps({"proxy_score": score}))
        if not scaled:
            return config
        init = run / "init.ckpt"
        state = {f"model.{k}": v for k, v in model.state_dict().items()}
        hparams = {"config": config.to_dict(), "task_info": dataclasses.asdict(info)}
        with atomic_writer(init, "wb") as handle:
            torch.save({"hyper_parameters": hparams, "state_dict": state}, handle)
        return dataclasses.replace(config, init=str(init))


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


class TrainingEvaluator(Evaluator):
    """An Evaluator whose models are candidates trained by a CandidateTrainer; each
    evaluation call (a generation) cuts by the curves of the candidates measured before it.
    One process: the candidates' Lightning runs do not share a torch.distributed group."""

    def __init__(self, space: Space, trainer: CandidateTrainer, batches, table="45nm"):
        super().__init__(space, _unused_provider, batches, table)
        self.trainer = trainer

    def _measure(self, todo: dict[str, dict]) -> None:
        if self.world_size > 1:
            raise ValueError("a search by training runs in one process, not under torchrun")
        curves = [
            o.training["cut_accuracy"]
            for o in self.cache.values()
            if o.training is not None and o.training["cut_accuracy"] is not None
        ]
        enough = len(curves) >= self.trainer.budget.min_history
        self.trainer.threshold = statistics.median(curves) if enough else None
        super()._measure(todo)

    def measure(self, subnet: Mapping) -> Objectives:
        model, record = self.trainer.trained(subnet)
        objectives = measure_objectives(model, self.batches, self.table)[0]
        return dataclasses.replace(objectives, training=record)


def _unused_provider(subnet: dict) -> nn.Module:
    raise AssertionError("TrainingEvaluator trains its models")
