"""Sampling and streamed generation: greedy decoding agrees with the parallel forward, sampling
follows the tempered distribution, the same seed gives the same tokens, bad settings are
one-line ValueErrors."""

import math

import pytest
import torch

from neurojoule.data.tokens import PAD_ID
from neurojoule.models import build_model
from neurojoule.train.generate import check_sampling, sample, sample_tokens, stream_energy

VOCAB = 17


def tiny_lm(name="spiking-ssm-lm", **options):
    torch.manual_seed(0)
    config = {"d_model": 8, "n_layers": 2, "d_state": 4, "vocab_size": VOCAB, **options}
    return build_model(name, config).double().eval()


@pytest.mark.parametrize("name", ["spiking-ssm-lm", "s4d-lm"])
def test_greedy_generation_follows_the_argmax_of_the_parallel_forward(name):
    """An independent reference: each greedy token is the argmax of forward() over the
    prompt and the tokens generated before it."""
    model = tiny_lm(name)
    prompt = [3, 7, 1, 12]
    generated = list(sample_tokens(model, prompt, 25, top_k=1))
    with torch.no_grad():
        scores = model(torch.tensor([prompt + generated]))[0]
    scores[:, PAD_ID] = -math.inf
    expected = scores.argmax(-1)[len(prompt) - 1 : -1]
    assert generated == expected.tolist()


def test_the_same_seed_draws_the_same_tokens():
    model = tiny_lm(adaptive_cutoffs=[5, 10], div_val=2)
    draw = lambda seed: list(sample_tokens(model, [2, 5], 40, temperature=1.5, seed=seed))  # noqa: E731
    assert draw(4) == draw(4)
    assert draw(4) != draw(5)
    assert all(1 <= token < VOCAB for token in draw(6))


def test_samples_follow_the_tempered_distribution_within_the_top_k():
    generator = torch.Generator().manual_seed(0)
    logits = torch.tensor([5.0, 1.0, 0.0, -1.0, 2.0, 0.5])  # id 0 (padding) is never drawn
    rows = 40000
    scores = logits.expand(rows, -1)
    for temperature, top_k in ((1.0, None), (0.5, None), (2.0, 3)):
        drawn = sample(scores, temperature, top_k, generator)
        counts = torch.bincount(drawn, minlength=len(logits)).double() / rows
        expected = torch.softmax(logits[1:] / temperature, -1)
        if top_k is not None:
            kept = logits[1:].topk(top_k).indices
            expected = torch.zeros_like(expected).index_copy(
                0, kept, torch.softmax(logits[1:][kept] / temperature, -1)
            )
        assert counts[PAD_ID] == 0
        assert torch.allclose(counts[1:], expected.double(), atol=0.01), (temperature, top_k)
    with pytest.raises(ValueError, match="NaN"):
        sample(torch.tensor([[0.0, 1.0, math.nan]]), 1.0, None, generator)
    random_scores = torch.randn(50, 9, generator=generator)
    best = random_scores[:, 1:].argmax(-1) + 1  # the best id after padding
    assert torch.equal(sample(random_scores, 0.3, 1, generator), best)


@pytest.mark.parametrize(
    ("temperature", "top_k", "message"),
    [
        (0.0, None, "temperature must be a finite number > 0"),
        (-1.0, None, "temperature must be a finite number > 0"),
        (math.nan, None, "temperature must be a finite number > 0"),
        (math.inf, None, "temperature must be a finite number > 0"),
        (True, None, "temperature must be a number"),
        (1.0, 0, "top_k must be an integer >= 1"),
        (1.0, 2.5, "top_k must be an integer >= 1"),
    ],
)
def test_bad_sampling_settings_are_one_line(temperature, top_k, message):
    with pytest.raises(ValueError, match=message) as error:
        check_sampling(temperature, top_k)
    assert "\n" not in str(error.value)


def test_stream_energy_counts_one_step_per_generated_token():
    model = tiny_lm()
    prompt, generated = [4, 9], [1, 2, 3, 5, 6]
    report = stream_energy(model, prompt, generated)
    assert report.samples == len(generated)
    assert {row.calls for row in report.layers if row.name.endswith(".ssm")} == {len(generated)}
    assert report.per_sample.snn_energy_j > 0
    with pytest.raises(ValueError, match="at least one generated token"):
        stream_energy(model, prompt, [])
    with pytest.raises(ValueError, match="empty one"):
        list(sample_tokens(model, [], 3))
