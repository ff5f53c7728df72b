"""The causal SSM language models run as a recurrence, one token at a time (CausalLM.step):
the same outputs and spikes as the parallel (FFT) forward at every position, independent
streams, a state that never grows, refusals, and energy counted from the streamed ops."""

import pytest
import torch

from neurojoule.energy import EnergyCounter
from neurojoule.layers import S4D, S4DKernelConfig, SSMBackbone
from neurojoule.models import build_model
from neurojoule.neuron import SpikingNeuron
from neurojoule.neuron.ssm_neuron import SSMNeuron

VOCAB = 23
TINY = {"d_model": 12, "n_layers": 2, "d_state": 8, "vocab_size": VOCAB}
MODELS = [
    ("spiking-ssm-lm", {}),
    ("spiking-ssm-lm", {"adaptive_cutoffs": [6, 14], "div_val": 2, "tie_weights": True}),
    ("spiking-ssm-lm", {"prenorm": False, "threshold": "shared", "decay": 0.5}),
    ("s4d-lm", {}),
    ("s4d-lm", {"adaptive_cutoffs": [6, 14], "div_val": 2}),
]


def lm(name: str, seed: int = 0, **options) -> torch.nn.Module:
    """A random tiny LM in float64, eval mode, moved off its structured S4D init so that
    every kernel parameter matters, with thresholds low enough to spike often."""
    torch.manual_seed(seed)
    model = build_model(name, {**TINY, **options}).double().eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, S4D):
                kernel = module.kernel
                kernel.log_A_real.add_(0.3 * torch.randn_like(kernel.log_A_real))
                kernel.A_imag.add_(torch.randn_like(kernel.A_imag))
                kernel.log_dt.copy_(torch.empty_like(kernel.log_dt).uniform_(-3, 0))
            if isinstance(module, SSMNeuron) and hasattr(module, "ln_vth"):
                module.ln_vth.copy_(torch.empty_like(module.ln_vth).uniform_(-1.5, 0))
    return model


class SpikeRecorder:
    """Spikes of every neuron layer, [B, H, L] per layer, from whole-sequence calls or steps."""

    def __init__(self, model):
        self.spikes: dict[str, list[torch.Tensor]] = {}
        self.handles = [
            module.register_forward_hook(self._hook(name))
            for name, module in model.named_modules()
            if isinstance(module, SpikingNeuron)
        ]

    def _hook(self, name):
        def hook(module, args, output):
            spikes = output[0] if isinstance(output, tuple) else output
            self.spikes.setdefault(name, []).append(spikes.detach().clone())

        return hook

    def joined(self) -> dict[str, torch.Tensor]:
        for handle in self.handles:
            handle.remove()
        return {name: torch.cat(parts, dim=-1) for name, parts in self.spikes.items()}


def stream(model, tokens: torch.Tensor, state=None) -> tuple[torch.Tensor, tuple]:
    """Step through tokens [B, L] -> (outputs [B, L, vocab], final state)."""
    state = model.init_stream(tokens.shape[0]) if state is None else state
    outputs = []
    with torch.no_grad():
        for t in range(tokens.shape[1]):
            out, state = model.step(tokens[:, t], state)
            outputs.append(out)
    return torch.stack(outputs, dim=1), state


@pytest.mark.parametrize(("name", "options"), MODELS)
@pytest.mark.parametrize("length", [1, 9, 70])
def test_streamed_outputs_and_spikes_equal_the_parallel_forward(name, options, length):
    model = lm(name, **options)
    tokens = torch.randint(1, VOCAB, (3, length), generator=torch.Generator().manual_seed(length))
    recorder = SpikeRecorder(model)
    with torch.no_grad():
        parallel = model(tokens)
    parallel_spikes = recorder.joined()
    recorder = SpikeRecorder(model)
    streamed, _ = stream(model, tokens)
    streamed_spikes = recorder.joined()
    assert streamed.shape == parallel.shape == (3, length, VOCAB)
    assert torch.allclose(streamed, parallel, rtol=0, atol=1e-9)
    assert parallel_spikes.keys() == streamed_spikes.keys()
    for layer, spikes in parallel_spikes.items():
        assert torch.equal(streamed_spikes[layer], spikes), layer
    if name == "spiking-ssm-lm" and length > 1:
        rates = [spikes.mean().item() for spikes in parallel_spikes.values()]
        assert all(0.02 < rate < 0.98 for rate in rates)  # the comparison means something


def test_streams_are_independent_and_the_state_is_never_modified():
    model = lm("spiking-ssm-lm")
    tokens = torch.randint(1, VOCAB, (3, 20), generator=torch.Generator().manual_seed(1))
    together, _ = stream(model, tokens)
    for row in range(3):  # each stream alone gives what it gave in the batch
        alone, _ = stream(model, tokens[row : row + 1])
        assert torch.allclose(alone[0], together[row], rtol=0, atol=1e-12)
    # a stream started after another sees nothing of it
    stream(model, tokens[:1])
    again, _ = stream(model, tokens[1:2])
    assert torch.allclose(again[0], together[1], rtol=0, atol=1e-12)
    # stepping does not change the state it is given: a stream can be branched
    _, state = stream(model, tokens[:, :10])
    kept = [tensor.clone() for layer in state for tensor in layer]
    first, _ = stream(model, tokens[:, 10:], state)
    second, _ = stream(model, tokens[:, 10:], state)
    assert torch.equal(first, second)
    assert all(
        torch.equal(a, b) for a, b in zip(kept, [t for layer in state for t in layer], strict=True)
    )
    assert torch.allclose(first, together[:, 10:], rtol=0, atol=1e-9)


def test_the_state_never_grows_over_a_thousand_steps():
    model = lm("spiking-ssm-lm", adaptive_cutoffs=[6, 14], div_val=2)
    state = model.init_stream(2)
    shapes = [[(t.shape, t.dtype) for t in layer] for layer in state]
    # per layer: the complex S4D state [B, H, N/2] and the neurons' potentials [B, H]
    assert shapes == [[((2, 12, 4), torch.complex128), ((2, 12), torch.float64)]] * 2
    tokens = torch.randint(1, VOCAB, (1000, 2), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        for step_tokens in tokens:
            out, state = model.step(step_tokens, state)
            assert [[(t.shape, t.dtype) for t in layer] for layer in state] == shapes
    assert out.shape == (2, VOCAB) and torch.isfinite(out).all()


def test_float32_streams_stay_close_to_the_parallel_forward():
    model = lm("s4d-lm").float()
    tokens = torch.randint(1, VOCAB, (2, 200), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        parallel = model(tokens)
    streamed, state = stream(model, tokens)
    assert state[0][0].dtype == torch.complex64
    assert torch.allclose(streamed, parallel, rtol=1e-4, atol=1e-4)


def test_the_streamed_energy_counts_the_same_ops_as_the_parallel_forward():
    """The S4D layers declare their recurrence's multiply-adds, so a whole sequence and its
    steps cost the same; the 1x1 convolutions get the same (binary) spikes."""
    model = lm("spiking-ssm-lm")
    tokens = torch.randint(1, VOCAB, (1, 30), generator=torch.Generator().manual_seed(4))
    with EnergyCounter(model) as parallel, torch.no_grad():
        model(tokens)
    with EnergyCounter(model) as streamed:
        stream(model, tokens)
    whole, steps = parallel.report(30), streamed.report(30)
    assert [row.name for row in steps.layers] == [row.name for row in whole.layers]
    for a, b in zip(whole.layers, steps.layers, strict=True):
        assert (a.dense_macs, a.sops, a.input_nonzero, a.binary) == (
            b.dense_macs,
            b.sops,
            b.input_nonzero,
            b.binary,
        ), a.name
        assert b.calls == 30 * a.calls
    assert [row.spikes for row in whole.neurons] == [row.spikes for row in steps.neurons]
    assert steps.per_sample.snn_energy_j == pytest.approx(whole.per_sample.snn_energy_j)
    ssm = next(row for row in steps.layers if row.name.endswith("block.ssm"))
    assert ssm.dense_macs == 30 * 12 * (8 * 4 + 1)  # steps x channels x (8 per mode + D)


def test_the_adaptive_softmax_is_counted_when_stepping():
    model = lm("spiking-ssm-lm", adaptive_cutoffs=[6, 14], div_val=2)
    with EnergyCounter(model) as counter:
        stream(model, torch.tensor([[3, 9, 17]]))
    rows = {row.name: row for row in counter.report(3).layers}
    # head: 6 words + 2 clusters from 12 dims; tails: 6 dims x 8 words, 3 dims x 9 words,
    # each after its projection from 12 dims
    per_token = 12 * 8 + (12 * 6 + 6 * 8) + (12 * 3 + 3 * 9)
    assert rows["decoder"].dense_macs == 3 * per_token


def test_the_s4d_step_is_the_recurrence_of_its_kernel_for_every_option():
    torch.manual_seed(5)
    config = S4DKernelConfig(d_state=6, init="inv", trainable_B=True, dt_min=0.01, dt_max=0.5)
    layer = S4D(4, config).double()
    with torch.no_grad():
        layer.kernel.B.copy_(torch.randn_like(layer.kernel.B))
    u = torch.randn(2, 4, 40, dtype=torch.float64)
    with torch.no_grad():
        whole = layer(u)
        state = layer.initial_state(2)
        steps = []
        for t in range(40):
            y, state = layer(u[..., t : t + 1], state=state)
            steps.append(y)
    assert torch.allclose(torch.cat(steps, -1), whole, rtol=0, atol=1e-10)


def test_a_lif_layer_continues_from_its_state():
    neuron = SSMNeuron(5).double()
    x = 2 * torch.randn(3, 5, 30, dtype=torch.float64)
    whole = neuron(x)
    state = torch.zeros(3, 5, dtype=torch.float64)
    parts = []
    for chunk in x.split([1, 7, 22], dim=-1):
        spikes, state = neuron(chunk, state=state)
        parts.append(spikes)
    assert torch.equal(torch.cat(parts, -1), whole)


def test_what_cannot_stream_is_refused_in_one_line():
    bidirectional = S4D(4, S4DKernelConfig(d_state=4, bidirectional=True))
    for call in (
        lambda: bidirectional.initial_state(1),
        lambda: bidirectional.step(torch.zeros(1, 4, 1), torch.zeros(1, 4, 2, dtype=torch.cfloat)),
    ):
        with pytest.raises(ValueError, match="bidirectional=False") as error:
            call()
        assert "\n" not in str(error.value)
    batch_norm = SSMBackbone(4, 1, kernel=S4DKernelConfig(d_state=4), norm="batch").train()
    with pytest.raises(ValueError, match="batch norm in training mode"):
        batch_norm.initial_state(1)
    batch_norm.eval().initial_state(1)  # running statistics act per position

    model = lm("spiking-ssm-lm")
    state = model.init_stream(2)
    bad_calls = {
        "integer tensor \\[B\\]": lambda: model.step(torch.tensor([[1, 2]]), state),
        "in \\[0, 23\\)": lambda: model.step(torch.tensor([1, VOCAB]), state),
        "as a tensor": lambda: model.step([1, 2], state),
        "state of its 2 layers": lambda: model.step(torch.tensor([1, 2]), state[:1]),
        "complex state": lambda: model.step(torch.tensor([1]), state),  # batch 1, state of 2
        "batch size >= 1": lambda: model.init_stream(0),
    }
    for message, call in bad_calls.items():
        with pytest.raises(ValueError, match=message) as error:
            call()
        assert "\n" not in str(error.value)
