"""The Lightning module of classification: cross-entropy (or TET), AdamW with the SSM kernel
group apart, warm-up + cosine schedule, per-layer spike rates, and checks that stop a run
on non-finite inputs, logits or losses.

Its checkpoints also carry every random generator's state, so a resumed run draws the same
dropout masks and augmentations as the uninterrupted one.
"""

from __future__ import annotations

import math
import random
import statistics

import lightning as L
import numpy as np
import torch

from neurojoule.data.tasks import TaskInfo
from neurojoule.layers import set_lif_mode, ssm_neurons, ssm_parameter_groups
from neurojoule.models import build_model
from neurojoule.neuron import SpikingNeuron
from neurojoule.train.config import TrainConfig
from neurojoule.train.finite import check_finite, explain_non_finite


class ClassifierModule(L.LightningModule):
    """Cross-entropy classification with AdamW (SSM kernel group apart), warm-up + cosine."""

    def __init__(self, config: dict, task_info: dict, **hyper_parameters):
        """`hyper_parameters`: more plain data for the checkpoints (a subclass's)."""
        super().__init__()
        self.save_hyperparameters({"config": config, "task_info": task_info, **hyper_parameters})
        self.config = TrainConfig(**config)
        self.model = self.build_model(TaskInfo(**task_info))
        if self.config.loss == "tet" and not hasattr(self.trained_network(), "step_logits"):
            raise ValueError(
                f"loss 'tet' needs a model with per-step outputs (spiking-mlp, spikformer), "
                f"got {self.config.model!r}"
            )
        self._rates: dict[str, dict[str, list[float]]] = {}  # stage -> layer -> rates
        self._stage: str | None = None
        self._step_rates: list[torch.Tensor] = []
        self._hooks = []
        # optimizer steps of the whole run, for the schedule; set by fit_and_test (Lightning's
        # estimate would build the training loader before a resumed run restores its position)
        self.total_steps: int | None = None

    def build_model(self, info: TaskInfo) -> torch.nn.Module:
        """The model this module trains (a subclass may build another kind)."""
        return build_model_for_task(self.config, info)

    def trained_network(self) -> torch.nn.Module:
        """The network of the registry that is trained (a subclass may wrap it)."""
        return self.model

    def forward(self, x):
        return self.model(x)

    def _step(self, batch, stage: str):
        x, y = batch
        check_finite(x, f"a {stage} batch's input")
        self._step_rates = []
        if stage == "train" and self.config.loss == "tet":
            per_step = self.model.step_logits(x)  # [T, B, classes]
            # the mean over steps of each step's cross-entropy (equal batch at every step)
            loss = torch.nn.functional.cross_entropy(
                per_step.flatten(0, 1), y.repeat(per_step.shape[0])
            )
            logits = per_step.mean(0)
        else:
            logits = self.model(x)
            loss = torch.nn.functional.cross_entropy(logits, y)
        self._check_output(logits, x, "logits", stage)
        self._check_output(loss, x, "loss", stage)
        acc = (logits.argmax(-1) == y).float().mean()
        on_step = stage == "train"
        loss = self._with_rate_penalty(loss, stage)
        for name, value in (("loss", loss), ("acc", acc)):
            self.log(
                f"{stage}/{name}",
                value,
                prog_bar=True,
                on_step=on_step,
                on_epoch=True,
                sync_dist=True,
            )
        return loss

    def _check_output(self, value: torch.Tensor, x: torch.Tensor, what: str, stage: str):
        if not torch.isfinite(value.detach()).all():
            when = f"in {stage} at step {self.global_step}"
            raise explain_non_finite(self.model, x, what, when)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["rng_states"] = {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": _numpy_state_as_tensors(),
            "python": random.getstate(),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        states = checkpoint.get("rng_states")
        if states is None:  # written before runs recorded them: resumes, but not bit for bit
            return
        torch.set_rng_state(states["torch"])
        if states["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])
        kind, keys, position, has_gauss, gauss = states["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
        random.setstate(states["python"])

    def _with_rate_penalty(self, loss: torch.Tensor, stage: str) -> torch.Tensor:
        """In training, add spike_rate_penalty x max(0, mean firing rate over the spiking layers
        - spike_rate_target) (differentiable through the surrogate)."""
        penalty = self.config.spike_rate_penalty
        if stage == "train" and penalty and self._step_rates:
            excess = torch.stack(self._step_rates).mean() - self.config.spike_rate_target
            loss = loss + penalty * excess.clamp(min=0)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    # Spike rates of every neuron layer, recorded with forward hooks into the running stage's
    # table and logged per epoch. Validation runs inside a training epoch, so each stage keeps
    # its own table and training resumes recording when validation ends.
    def _begin_stage(self, stage: str):
        if not self._hooks:
            for name, module in self.recorded_modules():
                if isinstance(module, SpikingNeuron):
                    self._hooks.append(module.register_forward_hook(self._recorder(name)))
        self._stage = stage
        self._rates[stage] = {}

    def recorded_modules(self):
        """(name, module) of the modules whose spike rates validation and test record."""
        return self.trained_network().named_modules()

    def _recorder(self, name: str):
        def hook(module, inputs, output):
            if self._stage is None:
                return
            spikes = output[0] if isinstance(output, tuple) else output
            rate = spikes.float().mean()
            if self._stage == "train":
                self._step_rates.append(rate)
            self._rates[self._stage].setdefault(name, []).append(rate.item())

        return hook

    def _end_stage(self, stage: str):
        rates = self._rates.pop(stage, {})
        self._stage = "train" if stage == "val" and "train" in self._rates else None
        if self._stage is None:
            for hook in self._hooks:
                hook.remove()
            self._hooks = []
        if not rates:
            return
        means = {name: statistics.fmean(values) for name, values in rates.items()}
        # a data-parallel run logs the mean over its ranks (sync_dist), each rank's share of
        # the batches counting alike
        for name, rate in means.items():
            self.log(f"{stage}/spike_rate/{name}", rate, sync_dist=True)
        mean = statistics.fmean(means.values())
        self.log(f"{stage}/spike_rate/mean", mean, prog_bar=True, sync_dist=True)

    def on_train_epoch_start(self):
        self._begin_stage("train")

    def on_train_epoch_end(self):
        self._end_stage("train")

    # validation and test use the exact LIF (eval_lif_mode), whatever the training mode
    def _start_evaluation(self, stage: str):
        self._saved_modes = set_lif_mode(self.model, self.config.eval_lif_mode)
        self._begin_stage(stage)

    def _end_evaluation(self, stage: str):
        self._end_stage(stage)
        set_lif_mode(self.model, self._saved_modes)

    def on_validation_epoch_start(self):
        self._start_evaluation("val")

    def on_validation_epoch_end(self):
        self._end_evaluation("val")

    def on_test_epoch_start(self):
        self._start_evaluation("test")

    def on_test_epoch_end(self):
        self._end_evaluation("test")

    def configure_optimizers(self):
        optim = self.config.optim
        groups = ssm_parameter_groups(self.model, optim.lr, optim.weight_decay)
        optimizer = torch.optim.AdamW(groups)
        total = max(1, self.total_steps or int(self.trainer.estimated_stepping_batches))
        warmup = int(total * optim.warmup_fraction)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def _numpy_state_as_tensors() -> tuple:
    """numpy's generator state with its key array as a tensor (loadable with weights_only)."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    return kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss


def task_sizes(info: TaskInfo) -> dict:
    """The model options a task decides: its classes and its input's size."""
    if info.image_size is not None:
        return {
            "num_classes": info.num_classes,
            "in_channels": info.in_channels,
            "image_size": info.image_size,
        }
    sizes = {"num_classes": info.num_classes, "paired": info.paired}
    if info.vocab_size is not None:
        sizes["vocab_size"] = info.vocab_size
    else:
        sizes["in_channels"] = info.in_channels
    return sizes


def build_model_for_task(config: TrainConfig, info: TaskInfo) -> torch.nn.Module:
    """The configured model with the task's input and output sizes."""
    if config.space is not None:
        raise ValueError(
            f"the config names a search space ({config.space}), so it is a supernet's: train "
            "it with `neurojoule supernet train` and take models out of it with `neurojoule "
            "supernet extract`"
        )
    sizes = task_sizes(info)
    clash = sorted(set(config.model_options) & set(sizes))
    if clash:
        raise ValueError(
            f"model options {clash} are set by the task ({info.name}: "
            f"{', '.join(f'{k}={sizes[k]}' for k in clash)}); leave them out of model_options"
        )
    model = build_model(config.model, **config.model_options, **sizes)
    if config.lif_mode != "auto":
        apply_lif_mode(model, config.lif_mode, config.model)
    return model


def apply_lif_mode(model: torch.nn.Module, mode: str, name: str) -> None:
    """Put every LIF layer of `model` (registered as `name`) in `mode`; "sdn" needs spiking
    SSM layers, which have an SDN."""
    if mode == "sdn" and not ssm_neurons(model):
        raise ValueError(
            f"LIF mode 'sdn' needs spiking SSM layers (they have an SDN), and {name} has none; "
            "use bptt or sltt"
        )
    set_lif_mode(model, mode)
