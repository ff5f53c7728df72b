"""Weights without gradients: an evolution strategy over a spiking network's weights, and a
population of weight vectors run as one batched forward.

`OpenES` is the OpenAI evolution strategy: a Gaussian search distribution around a mean
vector, antithetic perturbations (each noise vector with its negative), fitness shaped to
centred ranks (only the order of the population counts, so any fitness scale or outlier is
harmless, and a non-differentiable fitness is as good as a smooth one), and the estimated
gradient of the mean followed by Adam (torch.optim.Adam). `Population` holds a model's
trainable parameters as one flat vector and runs many such vectors on the same inputs at
once, with torch.func.vmap over functional_call, or one after another (the reference the
batched run is compared with).
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from neurojoule.neuron.lif_layer import SpikingNeuron


@dataclass(frozen=True)
class ESConfig:
    """The evolution strategy's settings. `population` is even (antithetic pairs); `sigma` is
    the noise scale in weight units; `lr` and `weight_decay` are Adam's on the mean."""

    population: int = 100
    sigma: float = 0.05
    lr: float = 0.03
    weight_decay: float = 0.0

    def __post_init__(self):
        if self.population < 2 or self.population % 2:
            raise ValueError(
                f"the ES population must be an even number >= 2 (antithetic pairs), got "
                f"{self.population}"
            )
        for name in ("sigma", "lr"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"ES {name} must be a finite number > 0, got {value}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"ES weight_decay must be finite and >= 0, got {self.weight_decay}")

    def to_dict(self) -> dict:
        return asdict(self)


def centred_ranks(fitness: torch.Tensor) -> torch.Tensor:
    """The fitness replaced by its ranks scaled to [-0.5, 0.5] (ties broken by position)."""
    ranks = torch.empty_like(fitness)
    ranks[fitness.argsort(stable=True)] = torch.arange(len(fitness), dtype=fitness.dtype)
    return ranks / max(len(fitness) - 1, 1) - 0.5


class OpenES:
    """Ask for a population of vectors, tell their fitness (higher is better), repeat; `mean`
    is the current solution. All random numbers come from the strategy's own generator, so a
    run is a function of its seed, and `state_dict` resumes it exactly."""

    def __init__(self, mean: torch.Tensor, config: ESConfig, seed: int = 0):
        if mean.dim() != 1 or not torch.isfinite(mean).all():
            raise ValueError("the ES mean must be a finite vector")
        self.config = config
        self.mean = nn.Parameter(mean.detach().clone())
        self.optimizer = torch.optim.Adam(
            [self.mean], lr=config.lr, weight_decay=config.weight_decay
        )
        self.generator = torch.Generator().manual_seed(seed)
        self._noise: torch.Tensor | None = None

    def ask(self) -> torch.Tensor:
        """`population` vectors [P, D]: the mean plus sigma times noise, pairs of opposite
        noise."""
        half = torch.randn(
            self.config.population // 2, len(self.mean), generator=self.generator
        ).to(self.mean.dtype)
        self._noise = torch.cat([half, -half])
        return self.mean.detach() + self.config.sigma * self._noise

    def tell(self, fitness: torch.Tensor) -> None:
        """One Adam step of the mean along the rank-shaped estimate of the fitness gradient."""
        if self._noise is None:
            raise RuntimeError("tell() needs the population of a previous ask()")
        fitness = torch.as_tensor(fitness, dtype=torch.float64).flatten()
        if fitness.shape != (len(self._noise),):
            raise ValueError(
                f"expected {len(self._noise)} fitness values (one per member), got "
                f"{tuple(fitness.shape)}"
            )
        if not torch.isfinite(fitness).all():
            raise ValueError("the fitness of a population member is NaN or Inf")
        shaped = centred_ranks(fitness).to(self._noise.dtype)
        gradient = shaped @ self._noise / (len(shaped) * self.config.sigma)
        self.mean.grad = -gradient  # Adam minimises; the fitness is maximised
        self.optimizer.step()
        self._noise = None

    def state_dict(self) -> dict:
        return {
            "mean": self.mean.detach().clone(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.mean.copy_(state["mean"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])


class Population:
    """A model's trainable parameters as one flat vector, and many such vectors run on the
    same inputs: `run(vectors, x)` gives every member's logits [P, B, classes] and its spikes
    per sample [P] (all spiking layers, summed over neurons and time steps).

    Batched (the default), the members run as one forward: functional_call under
    torch.func.vmap, so each Linear is one matrix product (the first one, whose input every
    member shares, against all members' weights side by side) and each LIF layer one call of
    the compiled kernel over every member's neurons. Looped, they run one after another.
    Buffers (batch-norm statistics) are the model's, shared by every member."""

    def __init__(self, model: nn.Module):
        self.model = model.eval()
        self.batched_model = _with_member_linears(model)
        self.names = [name for name, p in model.named_parameters() if p.requires_grad]
        parameters = dict(model.named_parameters())
        self.shapes = [parameters[name].shape for name in self.names]
        self.sizes = [parameters[name].numel() for name in self.names]

    @property
    def dim(self) -> int:
        return sum(self.sizes)

    def vector(self) -> torch.Tensor:
        """The model's current parameters as one vector."""
        parameters = dict(self.model.named_parameters())
        return torch.cat([parameters[name].detach().flatten() for name in self.names])

    def assign(self, vector: torch.Tensor) -> None:
        """Copy a vector into the model's parameters."""
        with torch.no_grad():
            parameters = dict(self.model.named_parameters())
            for name, value in self.unflatten(vector.unsqueeze(0)).items():
                parameters[name].copy_(value[0])

    def unflatten(self, vectors: torch.Tensor) -> dict[str, torch.Tensor]:
        """Vectors [P, D] as parameters by name, each [P, *shape] (views)."""
        if vectors.dim() != 2 or vectors.shape[1] != self.dim:
            raise ValueError(
                f"expected population vectors [members, {self.dim}], got {tuple(vectors.shape)}"
            )
        pieces = vectors.split(self.sizes, dim=1)
        return {
            name: piece.reshape(len(vectors), *shape)
            for name, shape, piece in zip(self.names, self.shapes, pieces, strict=True)
        }

    @torch.no_grad()
    def run(
        self, vectors: torch.Tensor, x: torch.Tensor, batched: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        parameters = self.unflatten(vectors)
        if batched:
            return torch.vmap(lambda p: _counted(self.batched_model, p, x))(parameters)
        members = [
            _counted(self.model, {name: value[i] for name, value in parameters.items()}, x)
            for i in range(len(vectors))
        ]
        logits, spikes = zip(*members, strict=True)
        return torch.stack(logits), torch.stack(spikes)


class _MemberLinearFunction(torch.autograd.Function):
    """F.linear (no gradients) with its own vmap rule: an input shared by every member (the
    encoded image) meets all members' weights side by side in one matrix product, with the
    bias added in it, instead of a batched product over a copy of the input per member."""

    @staticmethod
    def forward(x, weight, bias):
        return F.linear(x, weight, bias)

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def vmap(info, in_dims, x, weight, bias):
        members, (x_dim, w_dim, b_dim) = info.batch_size, in_dims
        weight = _members_first(weight, w_dim, members)  # [P, out, in]
        bias = _members_first(bias, b_dim, members)  # [P, out]
        size_out, size_in = weight.shape[1:]
        if x_dim is None:
            lead = x.shape[:-1]
            flat = torch.addmm(bias.reshape(-1), x.reshape(-1, size_in), weight.flatten(0, 1).T)
            return flat.view(*lead, members, size_out), len(lead)  # members after the lead
        x = x.movedim(x_dim, 0)
        lead = x.shape[1:-1]
        out = torch.baddbmm(bias.unsqueeze(1), x.reshape(members, -1, size_in), weight.mT)
        return out.view(members, *lead, size_out), 0


def _members_first(tensor: torch.Tensor, dim: int | None, members: int) -> torch.Tensor:
    if dim is None:
        return tensor.expand(members, *tensor.shape)
    return tensor.movedim(dim, 0)


class _MemberLinear(nn.Linear):
    """A Linear of the batched population: its parameters, _MemberLinearFunction's rule."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias if self.bias is not None else x.new_zeros(self.out_features)
        return _MemberLinearFunction.apply(x, self.weight, bias)


def _with_member_linears(model: nn.Module) -> nn.Module:
    """A shallow view of `model` whose Linear layers (exactly nn.Linear) compute with
    _MemberLinear; parameters and buffers are the model's own objects, named alike."""
    batched = copy.copy(model)
    batched._modules = dict(model._modules)
    for name, child in model.named_children():
        if type(child) is nn.Linear:
            member = _MemberLinear.__new__(_MemberLinear)
            member.__dict__ = dict(child.__dict__)
            batched._modules[name] = member
        else:
            batched._modules[name] = _with_member_linears(child)
    return batched


def _counted(
    model: nn.Module, parameters: dict, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's logits with `parameters`, and its spikes per sample."""
    counts: list[torch.Tensor] = []
    hooks = [
        module.register_forward_hook(lambda _m, _i, out: counts.append(out.sum()))
        for module in model.modules()
        if isinstance(module, SpikingNeuron)
    ]
    try:
        logits = functional_call(model, parameters, (x,))
    finally:
        for hook in hooks:
            hook.remove()
    spikes = torch.stack(counts).sum() if counts else logits.new_zeros(())
    return logits, spikes / len(x)


def classification_fitness(
    logits: torch.Tensor,
    labels: torch.Tensor,
    spikes: torch.Tensor,
    spike_cap: float | None = None,
    spike_penalty: float = 1.0,
) -> torch.Tensor:
    """Each member's fitness (higher is better): minus its mean cross-entropy on the batch,
    and with a spike budget minus spike_penalty x (spikes per sample / spike_cap - 1) for the
    members above the cap (a hard budget no gradient could follow)."""
    members, batch = logits.shape[:2]
    loss = F.cross_entropy(logits.flatten(0, 1), labels.repeat(members), reduction="none").view(
        members, batch
    )
    fitness = -loss.mean(1)
    if spike_cap is not None:
        fitness = fitness - spike_penalty * (spikes / spike_cap - 1).clamp(min=0)
    return fitness
