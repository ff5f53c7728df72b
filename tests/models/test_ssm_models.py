import pytest
import torch
import torch.nn.functional as F

from neurojoule.energy import EnergyCounter
from neurojoule.layers import (
    S4DBlock,
    SpikingS4DBlock,
    set_lif_mode,
    ssm_neurons,
    ssm_parameter_groups,
)
from neurojoule.models import (
    CausalLM,
    SequenceClassifier,
    SSMConfig,
    build_model,
    list_models,
    register_model,
    registry,
    ssm_config,
)

TINY = {"d_model": 16, "n_layers": 2, "d_state": 8}


def tiny(**fields) -> SSMConfig:
    return SSMConfig(**{**TINY, **fields})


def non_binary_layers(model, x) -> list[str]:
    model.eval()
    with EnergyCounter(model) as counter, torch.no_grad():
        model(x)
    return [row.name for row in counter.report(x.shape[0]).layers if not row.binary]


CONVS = ["backbone.layers.0.block.conv", "backbone.layers.1.block.conv"]
# The S4D convolutions declare their multiply-adds; they read the real-valued residual stream.
SSMS = ["backbone.layers.0.block.ssm", "backbone.layers.1.block.ssm"]


def interleave(ssms: list[str], convs: list[str]) -> list[str]:
    return [name for pair in zip(ssms, convs, strict=True) for name in pair]


def test_pixel_classifier_convs_see_only_spikes_real_values_reach_encoder_ssms_decoder():
    model = SequenceClassifier(tiny(in_channels=3, lif_mode="bptt"))
    assert non_binary_layers(model, torch.randn(2, 64, 3)) == ["encoder", *SSMS, "decoder"]


def test_token_classifier_embedding_is_no_synaptic_layer_and_its_convs_see_spikes():
    model = SequenceClassifier(tiny(vocab_size=20, lif_mode="sdn"))
    assert non_binary_layers(model, torch.randint(1, 20, (2, 64))) == [*SSMS, "decoder"]


def test_retrieval_mlp_sees_real_values_and_the_convs_still_see_spikes():
    model = SequenceClassifier(tiny(vocab_size=20, paired=True, num_classes=2))
    layers = non_binary_layers(model, torch.randint(1, 20, (2, 2, 64)))
    assert layers == [*SSMS, "decoder.0", "decoder.2"]


def test_every_conv_of_the_s4d_baseline_sees_real_values():
    model = SequenceClassifier(tiny(in_channels=3, spiking=False))
    layers = non_binary_layers(model, torch.randn(2, 64, 3))
    assert layers == ["encoder", *interleave(SSMS, CONVS), "decoder"]


def perturb_after(tokens: torch.Tensor, t: int, vocab_size: int) -> torch.Tensor:
    changed = tokens.clone()
    changed[:, t + 1 :] = torch.randint(1, vocab_size, changed[:, t + 1 :].shape)
    assert not torch.equal(changed, tokens)
    return changed


@pytest.mark.parametrize("mode", ["bptt", "sltt", "sdn"])
@pytest.mark.parametrize("training", [True, False])
def test_causal_lm_logits_at_t_ignore_later_tokens(mode, training):
    model = CausalLM(tiny(vocab_size=30, bidirectional=False, norm="layer", causal=True))
    set_lif_mode(model, mode)
    model.double().train(training)
    tokens = torch.randint(1, 30, (3, 80))
    logits = model(tokens)
    assert logits.shape == (3, 80, 30)
    for t in (0, 37, 78):
        changed = model(perturb_after(tokens, t, 30))
        torch.testing.assert_close(changed[:, : t + 1], logits[:, : t + 1], rtol=0, atol=1e-9)
        assert not torch.allclose(changed[:, t + 1 :], logits[:, t + 1 :])


def test_non_spiking_causal_lm_is_causal_too():
    model = CausalLM(
        tiny(spiking=False, vocab_size=30, bidirectional=False, norm="layer", causal=True)
    )
    model.double()
    tokens = torch.randint(1, 30, (2, 60))
    logits = model(tokens)
    changed = model(perturb_after(tokens, 25, 30))
    torch.testing.assert_close(changed[:, :26], logits[:, :26], rtol=0, atol=1e-9)


def test_token_pooling_is_the_mean_over_non_padding_positions():
    """With a bidirectional kernel the backbone does see the padding; only the pooling skips it."""
    model = SequenceClassifier(tiny(vocab_size=20, bidirectional=True)).eval()
    tokens = torch.randint(1, 20, (3, 50))
    tokens[0, 30:] = 0
    tokens[1, 45:] = 0
    hidden = model.backbone(model.encoder(tokens).transpose(1, 2))
    pooled = torch.stack([hidden[b][:, tokens[b] != 0].mean(-1) for b in range(3)])
    torch.testing.assert_close(model(tokens), model.decoder(pooled))


@pytest.mark.parametrize("spiking", [True, False])
def test_causal_classifier_gives_the_same_logits_with_or_without_trailing_padding(spiking):
    """A unidirectional kernel with layer norm never lets a pad reach an earlier position, so a
    sequence batched with longer ones (hence padded) is classified as if it ran alone."""
    config = tiny(spiking=spiking, vocab_size=20, bidirectional=False, norm="layer", causal=True)
    model = SequenceClassifier(config).double()
    short = torch.randint(1, 20, (1, 30))
    batch = torch.randint(1, 20, (2, 70))
    batch[0, :30], batch[0, 30:] = short[0], 0
    torch.testing.assert_close(model(batch)[:1], model(short), rtol=0, atol=1e-9)


def record_spikes(model) -> dict[str, list[torch.Tensor]]:
    spikes = {name: [] for name in ssm_neurons(model)}
    for name, neuron in ssm_neurons(model).items():
        neuron.register_forward_hook(lambda m, args, out, name=name: spikes[name].append(out))
    return spikes


def test_switching_lif_mode_keeps_the_checkpoint_and_sdn_agrees_with_exact_lif():
    model = SequenceClassifier(tiny(in_channels=1, lif_mode="bptt")).eval()
    x = torch.randn(4, 256, 1)
    state = {key: value.clone() for key, value in model.state_dict().items()}
    spikes = record_spikes(model)
    outputs = {}
    for mode in ("bptt", "sltt", "sdn"):
        set_lif_mode(model, mode)
        outputs[mode] = model(x).detach()
        assert model.state_dict().keys() == state.keys()
        assert all(torch.equal(value, state[key]) for key, value in model.state_dict().items())

    first, second = spikes.values()
    assert torch.equal(first[0], first[1]) and torch.equal(second[0], second[1])  # bptt = sltt
    assert (first[2] == first[0]).float().mean() > 0.998  # same input currents
    assert (second[2] == second[0]).float().mean() > 0.99  # currents differ where layer 1 did
    torch.testing.assert_close(outputs["sltt"], outputs["bptt"], rtol=0, atol=0)
    torch.testing.assert_close(outputs["sdn"], outputs["bptt"], rtol=0, atol=0.02)


def first_token_task(samples: int = 32, length: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """Label: is the first token odd? The decision sits at one position of a long sequence."""
    tokens = torch.randint(1, 10, (samples, length))
    return tokens, tokens[:, 0] % 2


@pytest.mark.parametrize(
    "fields",
    [
        {"spiking": True, "lif_mode": "sdn"},
        {"spiking": True, "lif_mode": "bptt"},
        {"spiking": False},
    ],
    ids=["spiking-sdn", "spiking-bptt", "s4d"],
)
def test_a_few_training_steps_decrease_the_loss(fields):
    model = SequenceClassifier(tiny(vocab_size=10, num_classes=2, **fields))
    optimizer = torch.optim.AdamW(ssm_parameter_groups(model, lr=0.01, weight_decay=0.0))
    tokens, labels = first_token_task()
    losses = []
    for _ in range(25):
        loss = F.cross_entropy(model(tokens), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.8 * losses[0]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"spiking": 1}, "spiking"),
        ({"d_model": 0}, "d_model"),
        ({"n_layers": 2.0}, "n_layers"),
        ({"d_state": 7}, "d_state"),
        ({"bidirectional": "yes"}, "bidirectional"),
        ({"norm": "group"}, "norm"),
        ({"dropout": 1.0}, "dropout"),
        ({"decay": 1.5}, "decay"),
        ({"decay": "0.125"}, "decay"),
        ({"threshold": "layer"}, "threshold"),
        ({"lif_mode": "exact"}, "lif_mode"),
        ({"surrogate": "nope"}, "surrogate"),
        ({"dt_min": 0.0}, "dt_min"),
        ({"dt_min": 0.1, "dt_max": 0.01}, "dt_max"),
        ({"init": "legs"}, "init"),
        ({"vocab_size": 1}, "vocab_size"),
        ({"in_channels": 0}, "in_channels"),
        ({"num_classes": 0}, "num_classes"),
        ({"vocab_size": 10, "in_channels": 1}, "vocab_size"),
        ({"paired": True, "in_channels": 1}, "vocab_size"),
        ({"lif_mode": "sdn", "decay": 0.3}, "decay"),
        ({"trainable_B": "yes"}, "trainable_B"),
        ({"causal": True, "bidirectional": True, "norm": "layer"}, "bidirectional"),
        ({"causal": True, "bidirectional": False, "norm": "batch"}, "norm"),
    ],
)
def test_bad_config_raises_naming_the_field(fields, field):
    with pytest.raises(ValueError, match=rf"\b{field}\b"):
        SSMConfig(**fields)


@pytest.mark.parametrize("spiking", [True, False])
def test_trainable_b_reaches_every_kernel_and_trains_with_the_kernel_group(spiking):
    fields = {"d_model": 4, "n_layers": 2, "d_state": 4, "in_channels": 1, "spiking": spiking}
    fixed = SequenceClassifier(SSMConfig(**fields))
    model = SequenceClassifier(SSMConfig(**fields, trainable_B=True))
    (kernel_group,) = (
        g for g in ssm_parameter_groups(model, 0.01, 0.1) if g["name"] == "ssm_kernel"
    )
    b_params = [p for name, p in model.named_parameters() if name.endswith(".B")]
    assert len(b_params) == 2 and not any(n.endswith(".B") for n, _ in fixed.named_parameters())
    assert all(any(p is q for q in kernel_group["params"]) for p in b_params)
    model(torch.randn(2, 16, 1)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in b_params)


def test_exact_modes_accept_any_decay_and_non_spiking_models_ignore_lif_settings():
    assert SSMConfig(lif_mode="bptt", decay=0.3).decay == 0.3
    assert not SSMConfig(spiking=False, decay=0.3).spiking


def test_bad_model_configs_and_unknown_fields():
    with pytest.raises(ValueError, match="vocab_size.*in_channels.*neither"):
        SequenceClassifier(tiny())
    with pytest.raises(ValueError, match="bidirectional"):
        CausalLM(tiny(vocab_size=20, bidirectional=True))
    with pytest.raises(ValueError, match="causal"):
        CausalLM(tiny(vocab_size=20, bidirectional=False))
    with pytest.raises(ValueError, match="vocab_size"):
        CausalLM(tiny(in_channels=1, bidirectional=False, norm="layer", causal=True))
    with pytest.raises(ValueError, match="SSMConfig"):
        SequenceClassifier({"in_channels": 1})
    with pytest.raises(ValueError, match=r"unknown SSMConfig fields \['width'\]"):
        ssm_config(tiny(in_channels=1), width=3)
    assert ssm_config({"d_model": 8}, n_layers=3) == SSMConfig(d_model=8, n_layers=3)


def test_wrong_inputs_raise_saying_what_was_expected():
    tokens = SequenceClassifier(tiny(vocab_size=20))
    with pytest.raises(ValueError, match=r"integer tensor \[B, L\].*float32"):
        tokens(torch.randn(2, 10))
    with pytest.raises(ValueError, match=r"\[B, L\].*\(2, 10, 1\)"):
        tokens(torch.ones(2, 10, 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"ids in \[0, 20\).*from 0 to 20"):
        tokens(torch.tensor([[0, 20]]))
    pixels = SequenceClassifier(tiny(in_channels=3))
    with pytest.raises(ValueError, match=r"float tensor \[B, L, 3\].*\(2, 10\)"):
        pixels(torch.randn(2, 10))
    pairs = SequenceClassifier(tiny(vocab_size=20, paired=True))
    with pytest.raises(ValueError, match=r"\[B, 2, L\].*\(2, 3, 10\)"):
        pairs(torch.ones(2, 3, 10, dtype=torch.long))


def test_registry_builds_each_ssm_model_with_overrides():
    assert list_models("*s4d*") == ["s4d", "s4d-lm"]
    assert list_models("spiking-ssm*") == ["spiking-ssm", "spiking-ssm-lm"]
    expected = {
        "spiking-ssm": (SequenceClassifier, SpikingS4DBlock),
        "s4d": (SequenceClassifier, S4DBlock),
        "spiking-ssm-lm": (CausalLM, SpikingS4DBlock),
        "s4d-lm": (CausalLM, S4DBlock),
    }
    for name, (model_class, block_class) in expected.items():
        model = build_model(name, **TINY)
        assert type(model) is model_class
        assert all(type(layer.block) is block_class for layer in model.backbone.layers)
        assert len(model.backbone.layers) == 2 and model.config.d_model == 16
    assert build_model("spiking-ssm", **TINY).config.in_channels == 1  # default: one value a step
    lm = build_model("s4d-lm", {"d_model": 8}, vocab_size=40)
    assert lm.config.causal and not lm.config.bidirectional and lm.config.vocab_size == 40


def test_registry_name_fixes_spiking_over_a_base_config_but_rejects_contradicting_overrides():
    assert not build_model("s4d", tiny(in_channels=1)).config.spiking
    with pytest.raises(ValueError, match="spiking"):
        build_model("s4d", spiking=True)
    with pytest.raises(ValueError, match="bidirectional"):
        build_model("spiking-ssm-lm", {"bidirectional": True})


def test_unknown_and_duplicate_names(monkeypatch):
    with pytest.raises(ValueError, match="unknown model 'ssm'.*s4d, s4d-lm, spikformer"):
        build_model("ssm")
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))

    @register_model("tiny-s4d", input_shape=("batch", 4))
    def tiny_s4d(config=None, **overrides):
        """A tiny S4D.

        More lines, which the registry leaves out."""
        return build_model("s4d", config, **overrides)

    assert list_models("tiny-*") == ["tiny-s4d"]
    assert registry.model_entry("tiny-s4d") == (tiny_s4d, "A tiny S4D.", ("batch", 4))
    with pytest.raises(ValueError, match="already registered"):
        register_model("s4d", input_shape=("batch",), description="again")(lambda config=None: None)
    with pytest.raises(ValueError, match="needs a description"):
        register_model("no-doc", input_shape=("batch",))(lambda config=None: None)


def test_one_kernel_config_and_one_neuron_config_reach_every_layer():
    config = tiny(in_channels=1, d_state=4, dt_min=0.01, init="inv", trainable_B=True, decay=0.25)
    model = SequenceClassifier(config)
    kernels = [layer.block.ssm.kernel.config for layer in model.backbone.layers]
    neurons = [layer.block.neuron.config for layer in model.backbone.layers]
    assert kernels == [config.kernel_config()] * 2 and len({id(k) for k in kernels}) == 1
    assert neurons == [config.neuron_config()] * 2 and len({id(n) for n in neurons}) == 1
    assert (kernels[0].d_state, kernels[0].dt_min, kernels[0].init) == (4, 0.01, "inv")
    assert neurons[0].decay == 0.25 and model.backbone.layers[1].block.neuron.decay == 0.25


@pytest.mark.parametrize(
    ("config", "x"),
    [
        ({"vocab_size": 20}, torch.ones(0, 10, dtype=torch.long)),
        ({"vocab_size": 20}, torch.ones(2, 0, dtype=torch.long)),
        ({"vocab_size": 20, "paired": True}, torch.ones(2, 2, 0, dtype=torch.long)),
        ({"in_channels": 3}, torch.ones(2, 0, 3)),
        ({"in_channels": 3}, torch.ones(0, 10, 3)),
    ],
)
def test_empty_inputs_raise_saying_so(config, x):
    with pytest.raises(ValueError, match="expected a non-empty input.*at least one step"):
        SequenceClassifier(tiny(**config))(x)


def test_empty_language_model_input_raises_saying_so():
    model = CausalLM(tiny(vocab_size=30, bidirectional=False, norm="layer", causal=True))
    with pytest.raises(ValueError, match="non-empty input"):
        model(torch.ones(2, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="non-empty input"):
        model.loss(torch.ones(0, 5, dtype=torch.long), torch.ones(0, 5, dtype=torch.long))


def test_non_finite_real_input_is_rejected_with_a_count():
    model = SequenceClassifier(tiny(in_channels=2))
    x = torch.randn(3, 16, 2)
    x[0, 3, 1], x[2, 0, 0] = float("nan"), float("inf")
    with pytest.raises(ValueError, match=r"SequenceClassifier input has 2 non-finite value"):
        model(x)
