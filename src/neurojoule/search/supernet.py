"""Supernet training: the weight-entangled supernet of a search space (models.elastic), trained
through the common Lightning trainer (train.fit), and read back for the search.

A supernet run is a training run whose config names a space (`space`, `sampling`): the run
folder, checkpoints, resume, Ctrl-C and the final test are those of every run. Each training
step draws subnets from a seeded generator of its own, whose state is saved in every checkpoint,
so a killed and resumed run draws the same subnets as the uninterrupted one:

- "uniform" (Auto-Spikformer's rule): one subnet per mini-batch, `space.decode(space.sample)`;
- "sandwich": the largest, the smallest and two uniform subnets per mini-batch, their losses
  summed into one optimizer step.

The supernet is built at the largest subnet (`space.extreme(largest=True)`: every size at its
largest, the neuron genes at the hand-designed values), so validation and the final test
measure the largest subnet. The checkpoints carry the space itself (hyper-parameter `space`),
so `load_supernet` rebuilds the supernet without the space file.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

import torch
from torch.func import functional_call

from neurojoule.data.tasks import TaskInfo
from neurojoule.models.elastic import ElasticModel
from neurojoule.neuron import SpikingNeuron, lif_layers, set_lif_mode
from neurojoule.search.space import SUPERNET_GENES, Gene, Space, load_space, parse_space
from neurojoule.train.checkpoints import read_checkpoint, resolve_checkpoint, upgrade_config
from neurojoule.train.config import TrainConfig
from neurojoule.train.finite import check_finite, explain_non_finite, non_finite_tensors
from neurojoule.train.fit import TrainResult, fit_and_test, seed_everything
from neurojoule.train.module import ClassifierModule, apply_lif_mode, task_sizes
from neurojoule.train.run_folder import RunFolder
from neurojoule.train.splits import make_splits

SAMPLER_STATE = "subnet_sampler"  # the checkpoint key of the sampling generator's state


def space_values(space: Space) -> dict:
    """The plain data of a space file that `parse_space` reads back as the same space."""

    def values(gene: Gene):
        return list(gene.values) if gene.kind == "choice" else {gene.kind: list(gene.values)}

    return {
        "model": space.model,
        "shared": {name: values(gene) for name, gene in space.shared.items()},
        "depth": values(space.depth),
        "depth_option": space.depth_option,
        "per_block": {name: values(gene) for name, gene in space.per_block.items()},
    }


def as_subnet(space: Space, values: Mapping) -> dict:
    """A subnet of `space` from a subnet's options or a genome (genes `heads.0`, ...), with
    each value as the space holds it (per-block values as tuples); ValueError if it is not a
    member of the space."""
    if not isinstance(values, Mapping):
        raise ValueError(f"a subnet is a mapping of model options, got {type(values).__name__}")
    if {gene.name for gene in space.genes} == set(values):
        values = space.decode(values)
    genes = {**space.shared, "depth": space.depth, **space.per_block}
    if set(values) != set(genes):
        space.check(values)  # a ValueError naming the options a subnet has
    subnet = {}
    for name, value in values.items():
        if name in space.per_block:
            if not isinstance(value, list | tuple):
                raise ValueError(f"{name} takes one value per block, got {value!r}")
            subnet[name] = tuple(_as_gene_value(genes[name], v) for v in value)
        else:
            subnet[name] = _as_gene_value(genes[name], value)
    space.check(subnet)
    return subnet


def _as_gene_value(gene: Gene, value):
    """The space's own value equal to `value` (so 64.0 becomes the choice 64)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return value  # space.check refuses it
    if gene.kind == "choice":
        return next((choice for choice in gene.values if choice == value), value)
    if gene.kind == "int" and float(value).is_integer():
        return int(value)
    return float(value) if gene.kind == "real" else value


class SubnetSampler:
    """The subnets of each training step, drawn by `rule` from a seeded generator."""

    def __init__(self, space: Space, rule: str, seed: int):
        self.space, self.rule = space, rule
        self.rng = random.Random(seed)

    def draw(self) -> list[dict]:
        if self.rule == "uniform":
            return [self.uniform()]
        if self.rule == "sandwich":
            largest, smallest = (self.space.extreme(largest=big) for big in (True, False))
            return [largest, smallest, self.uniform(), self.uniform()]
        raise ValueError(f"unknown sampling rule {self.rule!r}")

    def uniform(self) -> dict:
        return self.space.decode(self.space.sample(self.rng))


def build_elastic(space: Space, config: TrainConfig, info: TaskInfo) -> ElasticModel:
    """The supernet of `space` for a task: the config's model options (those no gene sets),
    the space's largest subnet, the task's sizes."""
    if config.model != space.model:
        raise ValueError(
            f"the space is of model {space.model!r}, the config names {config.model!r}"
        )
    if not space.is_elastic():
        raise ValueError(
            f"a supernet holds spaces of the genes {list(SUPERNET_GENES)} only; search a space "
            f"of {space.model} by training its candidates (neurojoule search --space)"
        )
    searched = sorted(set(SUPERNET_GENES) & set(config.model_options))
    if searched:
        raise ValueError(f"model_options {searched} are searched by the space; leave them out")
    largest = {**space.supernet_options(), **space.extreme(largest=True)}
    return ElasticModel(space.model, {**config.model_options, **largest, **task_sizes(info)})


class SupernetModule(ClassifierModule):
    """Trains an ElasticModel: each step the subnets the sampler draws, as leading slices of
    the supernet (losses summed, one optimizer step); validation and test the largest subnet.
    Logged train/loss and train/acc are means over the step's subnets."""

    def __init__(self, config: dict, task_info: dict, space: dict):
        # space: the space file's data, kept in the checkpoints
        super().__init__(config, task_info, space=space)
        self.sampler = SubnetSampler(self.space, self.config.sampling, self.config.seed)

    def build_model(self, info: TaskInfo) -> ElasticModel:
        self.space = parse_space(self.hparams["space"])
        elastic = build_elastic(self.space, self.config, info)
        if self.config.lif_mode != "auto":  # the subnets take the supernet's modes
            apply_lif_mode(elastic.supernet, self.config.lif_mode, self.config.model)
        return elastic

    def trained_network(self) -> torch.nn.Module:
        # the supernet: the largest subnet, whose layers validation and test record, named as
        # in a standalone model (as training names them)
        return self.model.supernet

    def training_step(self, batch, batch_idx):
        x, y = batch
        check_finite(x, "a train batch's input")
        subnets = self.sampler.draw()
        total, losses, accuracies = 0.0, [], []
        for subnet in subnets:
            self._step_rates = []
            loss, logits = self._subnet_loss(x, y, subnet)
            accuracies.append((logits.argmax(-1) == y).float().mean())
            losses.append(loss.detach())
            total = total + self._with_rate_penalty(loss, "train")
        self.log("train/loss", torch.stack(losses).mean(), prog_bar=True, on_epoch=True)
        self.log("train/acc", torch.stack(accuracies).mean(), prog_bar=True, on_epoch=True)
        return total

    def _subnet_loss(self, x: torch.Tensor, y: torch.Tensor, subnet: dict):
        """Cross-entropy (or TET) of one subnet on a batch, with its logits; its neurons' spike
        rates recorded as a standalone model's are."""
        template = self.model.template(subnet)
        modes = {name: layer.mode for name, layer in lif_layers(self.model.supernet).items()}
        set_lif_mode(template, {name: modes[name] for name in lif_layers(template)})
        hooks = [
            module.register_forward_hook(self._recorder(name))
            for name, module in template.named_modules()
            if isinstance(module, SpikingNeuron)
        ]
        try:
            if self.config.loss == "tet":
                state = {f"model.{k}": v for k, v in self.model.sliced_state(subnet).items()}
                per_step = functional_call(_StepLogits(template), state, (x,))
                loss = torch.nn.functional.cross_entropy(
                    per_step.flatten(0, 1), y.repeat(per_step.shape[0])
                )
                logits = per_step.mean(0)
            else:
                logits = self.model(x, subnet)
                loss = torch.nn.functional.cross_entropy(logits, y)
        finally:
            for hook in hooks:
                hook.remove()
        for what, value in (("logits", logits), ("loss", loss)):
            if not torch.isfinite(value.detach()).all():
                when = f"in train at step {self.global_step} (subnet {subnet})"
                raise explain_non_finite(self.model.extract(subnet), x, what, when)
        return loss, logits

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint[SAMPLER_STATE] = self.sampler.rng.getstate()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get(SAMPLER_STATE)
        if state is not None:
            self.sampler.rng.setstate(state)


class _StepLogits(torch.nn.Module):
    """A model's per-step outputs as its forward (for torch.func.functional_call)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.step_logits(x)


def read_space(name_or_path: str | Path) -> dict:
    """The data of a space (a name or a file), checked: what a supernet run keeps."""
    return space_values(load_space(name_or_path))


def train_supernet(
    config: TrainConfig, out: str | Path, resume: bool = False, progress: bool = True
) -> TrainResult:
    """Train the supernet of `config.space` into the run folder `out`, then test its largest
    subnet. A resumed run keeps the space its checkpoint holds."""
    if config.space is None:
        raise ValueError("a supernet run needs a config with a space (a name or a YAML file)")
    space = read_space(config.space)
    with RunFolder(out, resume) as folder:
        if resume:
            space = read_checkpoint(folder.last)["hyper_parameters"].get("space", space)
        seed_everything(config.seed)
        train_set, val_set, test_set, info = make_splits(config)
        module = SupernetModule(config.to_dict(), asdict(info), space)
        splits = (train_set, val_set, test_set)
        return fit_and_test(module, splits, config, folder, progress, monitor=("val/acc", "max"))


def format_supernet_result(config: TrainConfig, result: TrainResult) -> str:
    """What `neurojoule supernet train` prints: the test metrics of the largest subnet at the
    tested checkpoint, then the run folder."""
    metrics = ", ".join(f"{name} {value:.4g}" for name, value in result.test_metrics.items())
    return (
        f"supernet of {config.space} ({config.model}, {config.sampling} sampling) on "
        f"{config.task}, largest subnet, {result.tested_checkpoint.name}: {metrics}\n"
        f"run written to {result.run_dir}; take a subnet out with: neurojoule supernet extract "
        f"{result.run_dir} --largest --out subnet.ckpt"
    )


def load_supernet(path: str | Path) -> tuple[ElasticModel, Space, TrainConfig, TaskInfo]:
    """The supernet of a supernet run folder (its best checkpoint) or checkpoint, in eval
    mode on the CPU, with its space, config and task."""
    return read_supernet(path)[:4]


def read_supernet(path: str | Path) -> tuple:
    """load_supernet's four, then the checkpoint's path and its raw dict."""
    path = resolve_checkpoint(path)
    checkpoint = read_checkpoint(path)
    hparams = checkpoint["hyper_parameters"]
    try:
        config = TrainConfig(**upgrade_config(hparams["config"]))
        info = TaskInfo(**hparams["task_info"])
    except TypeError as error:
        raise ValueError(f"{path} is not a neurojoule training checkpoint: {error}") from None
    values = hparams.get("space")
    if config.space is None or not isinstance(values, dict):
        raise ValueError(
            f"{path} is not a supernet checkpoint (a run of {config.model} without a search "
            "space); train one with `neurojoule supernet train`"
        )
    try:
        space = parse_space(values)
    except ValueError as error:
        raise ValueError(f"{path}: its space is broken: {error}") from None
    state = {
        key.removeprefix("model."): value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith("model.")
    }
    bad = non_finite_tensors(state)
    if bad:
        raise ValueError(f"{path}: weight {bad[0]} holds NaN or Inf; expected finite numbers")
    elastic = build_elastic(space, config, info)
    try:
        elastic.load_state_dict(state)
    except RuntimeError as error:
        first_line = str(error).splitlines()[0]
        raise ValueError(f"{path}: weights do not fit the supernet: {first_line}") from None
    return elastic.eval(), space, config, info, path, checkpoint
