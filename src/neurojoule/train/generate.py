"""Text generation from a causal language model, streamed one token at a time.

The model runs as its recurrence (CausalLM.init_stream / step): each new token costs one step
of fixed size, whatever the length of the text so far. Sampling: the model's scores (logits,
or log-probabilities with an adaptive softmax) divided by the temperature, restricted to the
`top_k` best tokens when given (top_k = 1 is greedy decoding), then drawn from a generator
seeded with `seed`; the padding id is never drawn.

Measured for a generation of n tokens (each one the output of one step: the step that reads
the last prompt token, then one step per generated token but the last):
- tokens per second: n / the wall time of those n steps, sampling included, prompt excluded;
- energy per token: the same n steps replayed from the same state on the same tokens under an
  EnergyCounter (the same ops, the same spikes), divided by n. The replay keeps the counter's
  hooks out of the timing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from neurojoule.data import is_lm_task
from neurojoule.data.text_codec import TextCodec, lm_text_codec
from neurojoule.data.tokens import PAD_ID
from neurojoule.energy import EnergyCounter, EnergyReport, get_energy_table
from neurojoule.train.checkpoints import load_checkpoint, resolve_checkpoint
from neurojoule.train.config import TrainConfig


def check_sampling(temperature: float, top_k: int | None) -> None:
    """A one-line ValueError unless temperature is a finite number > 0 and top_k None or >= 1."""
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(
            f"temperature must be a finite number > 0 (top_k 1 decodes greedily), got {temperature}"
        )
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be an integer >= 1 (or None for all tokens), got {top_k!r}")


def sample(
    scores: torch.Tensor,
    temperature: float,
    top_k: int | None,
    generator: torch.Generator,
) -> torch.Tensor:
    """One token id per row of scores [B, vocab_size] (logits or log-probabilities)."""
    scores = scores.double() / temperature
    scores[:, PAD_ID] = -math.inf
    index = None
    if top_k is not None and top_k < scores.shape[-1] - 1:
        scores, index = scores.topk(top_k, dim=-1)
    probabilities = torch.softmax(scores, -1)
    if not torch.isfinite(probabilities).all():
        raise ValueError("the model's scores hold NaN or +Inf; expected finite scores to sample")
    # inverse CDF: one uniform number per row (several times faster than torch.multinomial)
    cdf = probabilities.cumsum(-1)
    uniform = torch.rand(len(cdf), 1, dtype=cdf.dtype, generator=generator) * cdf[:, -1:]
    choice = torch.searchsorted(cdf, uniform, right=True).clamp(max=cdf.shape[-1] - 1)
    return (choice if index is None else index.gather(-1, choice)).squeeze(-1)


def _check_stream_model(model: nn.Module) -> None:
    if not (
        callable(getattr(model, "init_stream", None)) and callable(getattr(model, "step", None))
    ):
        raise ValueError(
            "expected a causal language model that runs one token at a time (spiking-ssm-lm or "
            f"s4d-lm), got {type(model).__name__}"
        )


def _check_prompt(prompt_ids: Sequence[int]) -> None:
    if len(prompt_ids) == 0:
        raise ValueError("expected a prompt of at least one token, got an empty one")


def _token(index: int) -> torch.Tensor:
    return torch.tensor([index], dtype=torch.long)


@torch.no_grad()
def primed_state(model: nn.Module, prompt_ids: Sequence[int]):
    """The stream state after every prompt token but the last (which the first generating
    step reads)."""
    _check_stream_model(model)
    _check_prompt(prompt_ids)
    state = model.init_stream(1)
    for index in prompt_ids[:-1]:
        _, state = model.step(_token(index), state)
    return state


@torch.no_grad()
def sample_tokens(
    model: nn.Module,
    prompt_ids: Sequence[int],
    count: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
    state=None,
) -> Iterator[int]:
    """The ids of `count` tokens sampled after `prompt_ids`, one at a time, each from one
    step of the model's recurrence (the model in eval mode). `state`: primed_state(model,
    prompt_ids) when already computed (so that a caller can time the generating steps only)."""
    check_sampling(temperature, top_k)
    generator = torch.Generator().manual_seed(seed)
    if state is None:
        state = primed_state(model, prompt_ids)
    current = prompt_ids[-1]
    for _ in range(count):
        scores, state = model.step(_token(current), state)
        current = int(sample(scores, temperature, top_k, generator)[0])
        yield current


@torch.no_grad()
def stream_energy(
    model: nn.Module,
    prompt_ids: Sequence[int],
    generated: Sequence[int],
    table: str = "45nm",
) -> EnergyReport:
    """The energy report of the steps that generated `generated` after `prompt_ids`, replayed
    under an EnergyCounter, per generated token (samples = len(generated))."""
    if len(generated) == 0:
        raise ValueError("expected at least one generated token to measure, got none")
    state = primed_state(model, prompt_ids)
    fed = [prompt_ids[-1], *generated[:-1]]
    with EnergyCounter(model, table=table) as counter:
        for index in fed:
            _, state = model.step(_token(index), state)
    return counter.report(samples=len(generated))


@dataclass(frozen=True)
class GeneratedText:
    """A generation and what it cost."""

    checkpoint: str
    model: str
    task: str
    prompt: str  # the prompt as the model read it (its vocabulary's view: lower-cased, <unk>)
    text: str  # the generated continuation
    full_text: str  # the prompt and its continuation, as one text
    prompt_ids: tuple[int, ...]
    ids: tuple[int, ...]
    seconds: float  # wall time of the generating steps
    energy: EnergyReport

    @property
    def tokens(self) -> int:
        return len(self.ids)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else math.inf

    @property
    def energy_per_token_uj(self) -> float:
        return self.energy.per_sample.snn_energy_j * 1e6

    def to_dict(self) -> dict:
        per_token = self.energy.per_sample
        return {
            "text": self.text,
            "tokens": self.tokens,
            "tokens_per_s": self.tokens_per_s,
            "energy_per_token_uj": self.energy_per_token_uj,
            "ann_energy_per_token_uj": per_token.ann_energy_j * 1e6,
            "mean_spike_rate": self.energy.mean_firing_rate,
            "prompt": self.prompt,
            "prompt_tokens": len(self.prompt_ids),
            "seconds": self.seconds,
            "checkpoint": self.checkpoint,
            "model": self.model,
            "task": self.task,
            "energy_table": self.energy.table.name,
        }

    def summary(self) -> str:
        """One line: tokens, time, rate and energy per token."""
        rate = self.energy.mean_firing_rate
        spikes = "" if rate is None else f", mean spike rate {rate * 100:.1f} %"
        return (
            f"{self.tokens} tokens in {self.seconds:.2f} s ({self.tokens_per_s:.1f} tokens/s); "
            f"energy {self.energy_per_token_uj:.3f} µJ per token ({self.energy.table.name} "
            f"table{spikes})"
        )


def load_language_model(checkpoint: str | Path) -> tuple[TrainConfig, nn.Module, TextCodec]:
    """Config, model (eval mode) and text codec of a language-model checkpoint or run folder;
    a checkpoint of another kind is a ValueError."""
    path = resolve_checkpoint(checkpoint)
    config, info, model = load_checkpoint(path)
    if not is_lm_task(config.task):
        raise ValueError(
            f"{path} is not a language model: its task {config.task!r} is not language "
            "modelling; expected a spiking-ssm-lm or s4d-lm checkpoint"
        )
    _check_stream_model(model)
    codec = lm_text_codec(config.task, config.task_root, **config.task_options)
    if codec.vocab_size != info.vocab_size:
        raise ValueError(
            f"{path}: the vocabulary rebuilt from task {config.task!r} has {codec.vocab_size} "
            f"ids, the model {info.vocab_size}; expected the data it was trained on"
        )
    return config, model, codec


def generate_text(
    checkpoint: str | Path,
    prompt: str,
    max_tokens: int = 100,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
    energy_table: str = "45nm",
    on_token: Callable[[int], None] | None = None,
) -> GeneratedText:
    """Continue `prompt` by `max_tokens` tokens sampled from a language-model checkpoint (or
    run folder), streamed one token at a time; `on_token(i)` is called after the i-th."""
    check_sampling(temperature, top_k)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"max_tokens must be an integer >= 1, got {max_tokens!r}")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"expected a prompt with at least one word, got {prompt!r}")
    get_energy_table(energy_table)  # a bad table name fails before the work, not after
    path = resolve_checkpoint(checkpoint)
    config, model, codec = load_language_model(path)
    prompt_ids = codec.start_ids + codec.encode(prompt)
    _check_prompt(prompt_ids)
    state = primed_state(model, prompt_ids)
    ids: list[int] = []
    start = time.perf_counter()
    for index in sample_tokens(
        model,
        prompt_ids,
        max_tokens,
        temperature=temperature,
        top_k=top_k,
        seed=seed,
        state=state,
    ):
        ids.append(index)
        if on_token is not None:
            on_token(len(ids))
    seconds = time.perf_counter() - start
    energy = stream_energy(model, prompt_ids, ids, energy_table)
    return GeneratedText(
        checkpoint=str(path),
        model=config.model,
        task=config.task,
        prompt=codec.decode(prompt_ids[len(codec.start_ids) :]),
        text=codec.decode(ids),
        full_text=codec.decode(prompt_ids[len(codec.start_ids) :] + ids),
        prompt_ids=tuple(prompt_ids),
        ids=tuple(ids),
        seconds=seconds,
        energy=energy,
    )
