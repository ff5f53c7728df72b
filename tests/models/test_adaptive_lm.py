import pytest
import torch
import torch.nn.functional as F

from neurojoule.energy import EnergyCounter
from neurojoule.layers.adaptive import AdaptiveInput, AdaptiveSoftmax
from neurojoule.models import build_model

VOCAB, D_MODEL, CUTOFFS = 23, 16, [5, 12]


def adaptive_lm(spiking=True, **overrides):
    options = dict(
        d_model=D_MODEL, n_layers=1, d_state=4, vocab_size=VOCAB, adaptive_cutoffs=CUTOFFS,
        div_val=2, tie_weights=True,
    )  # fmt: skip
    return build_model("spiking-ssm-lm" if spiking else "s4d-lm", **{**options, **overrides})


def full_softmax_reference(softmax: AdaptiveSoftmax, h: torch.Tensor) -> torch.Tensor:
    """p(w) = p_head(w or its cluster) * p_cluster(w), written out from the raw weights."""
    w, b, p = softmax.weights, softmax.biases, softmax.projections

    def project(i, x):
        return x @ p[str(i)] if str(i) in p else x

    head = torch.cat(
        [project(0, h) @ w[0].T + b[0], h @ softmax.cluster_weight.T + softmax.cluster_bias], -1
    ).softmax(-1)
    probs = [head[:, : CUTOFFS[0]]]
    for i in (1, 2):
        tail = (project(i, h) @ w[i].T + b[i]).softmax(-1)
        probs.append(head[:, CUTOFFS[0] + i - 1, None] * tail)
    return torch.cat(probs, -1)


@pytest.mark.parametrize("tied", [True, False])
def test_adaptive_softmax_is_a_distribution_equal_to_the_written_out_one(tied):
    encoder = AdaptiveInput(VOCAB, D_MODEL, CUTOFFS, div_val=2)
    softmax = AdaptiveSoftmax(VOCAB, D_MODEL, CUTOFFS, div_val=2, tied_to=encoder if tied else None)
    for bias in softmax.biases:
        torch.nn.init.normal_(bias)
    h = torch.randn(7, D_MODEL)
    log_prob = softmax.log_prob(h)
    assert log_prob.shape == (7, VOCAB)
    torch.testing.assert_close(log_prob.exp().sum(-1), torch.ones(7))
    torch.testing.assert_close(log_prob.exp(), full_softmax_reference(softmax, h))
    targets = torch.tensor([0, 4, 5, 11, 12, 22, 7])  # every cluster and both cluster edges
    expected = -log_prob.gather(1, targets[:, None]).squeeze(1)
    torch.testing.assert_close(softmax(h, targets), expected)


def test_tied_weights_are_the_same_parameters():
    model = adaptive_lm()
    encoder, decoder = model.encoder, model.decoder
    for i, embedding in enumerate(encoder.embeddings):
        assert decoder.weights[i] is embedding.weight
    assert set(decoder.projections) == {"1", "2"}  # clusters of 8 and 4 dims
    for key, projection in encoder.projections.items():
        assert decoder.projections[key] is projection.weight
    untied = adaptive_lm(tie_weights=False)
    count = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for p in untied.parameters()) > count
    tokens = torch.randint(1, VOCAB, (2, 9))
    model.loss(tokens, tokens.roll(-1, 1)).backward()
    assert encoder.embeddings[2].weight.grad.abs().sum() > 0
    reloaded = adaptive_lm()
    reloaded.load_state_dict(model.state_dict())
    assert reloaded.decoder.weights[1] is reloaded.encoder.embeddings[1].weight


def test_plain_lm_can_tie_its_decoder_to_the_embedding():
    model = build_model("s4d-lm", d_model=8, n_layers=1, d_state=4, vocab_size=11, tie_weights=True)
    assert model.decoder.weight is model.encoder.weight


@pytest.mark.parametrize("adaptive", [True, False])
def test_lm_loss_is_the_cross_entropy_of_its_logits(adaptive):
    model = adaptive_lm() if adaptive else adaptive_lm(adaptive_cutoffs=None)
    model.eval()
    tokens = torch.randint(1, VOCAB, (3, 10))
    targets = tokens.roll(-1, 1)
    targets[0, -4:] = 0  # padding targets are left out
    logits = model(tokens)
    assert logits.shape == (3, 10, VOCAB)
    reference = F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1), ignore_index=0)
    torch.testing.assert_close(model.loss(tokens, targets), reference)
    assert (model.nll(tokens, targets)[0, -4:] == 0).all()


@pytest.mark.parametrize("spiking", [True, False])
def test_adaptive_lm_is_causal(spiking):
    model = adaptive_lm(spiking).eval()
    tokens = torch.randint(1, VOCAB, (2, 16))
    changed = tokens.clone()
    changed[:, 9:] = torch.randint(1, VOCAB, (2, 7))
    targets = tokens.roll(-1, 1)
    with torch.no_grad():
        before, after = model(tokens), model(changed)
        nll_before, nll_after = model.nll(tokens, targets), model.nll(changed, targets)
    torch.testing.assert_close(before[:, :9], after[:, :9])
    torch.testing.assert_close(nll_before[:, :9], nll_after[:, :9])
    assert not torch.allclose(before[:, 9:], after[:, 9:])


def test_embedding_dropout_acts_in_training_only():
    model = adaptive_lm(emb_dropout=0.5, softmax_dropout=0.5)
    tokens = torch.randint(1, VOCAB, (2, 8))
    model.train()
    assert not torch.equal(model.encoder(tokens), model.encoder(tokens))
    model.eval()
    assert torch.equal(model.encoder(tokens), model.encoder(tokens))


def test_energy_counter_counts_the_adaptive_softmax():
    model = adaptive_lm().eval()
    tokens = torch.randint(1, VOCAB, (2, 8))
    with EnergyCounter(model) as counter, torch.no_grad():
        model.nll(tokens, torch.full_like(tokens, 3))  # all targets in the head cluster
    rows = {row.name: row for row in counter.report(samples=16).layers}
    head_macs = 16 * D_MODEL * (CUTOFFS[0] + 2)
    assert rows["decoder"].dense_macs == head_macs


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"adaptive_cutoffs": [12, 5]}, "adaptive_cutoffs"),
        ({"adaptive_cutoffs": [5, 23]}, "adaptive_cutoffs"),
        ({"adaptive_cutoffs": "5,12"}, "adaptive_cutoffs"),
        ({"div_val": 64}, "div_val"),
        ({"emb_dropout": 1.0}, "emb_dropout"),
    ],
)
def test_bad_adaptive_options_are_rejected(overrides, match):
    with pytest.raises(ValueError, match=match):
        adaptive_lm(**overrides)


def test_classifier_rejects_language_model_options():
    with pytest.raises(ValueError, match="language-model options"):
        build_model("spiking-ssm", d_model=8, n_layers=1, vocab_size=VOCAB, adaptive_cutoffs=[5])
