import json

import pytest
import torch

from neurojoule.neuron.sdn import (
    SHIPPED_DECAYS,
    SurrogateDynamicNetwork,
    exact_targets,
    load_sdn,
    save_sdn,
    sdn_spikes,
    shipped_path,
)


def _exact_loop(y, decay):
    """Hard-reset LIF, v_th = 1, v_reset = 0, written out: returns (decay * u[t-1], spikes)."""
    u = torch.zeros(y.shape[0], dtype=y.dtype)
    mem, spikes = [], []
    for t in range(y.shape[1]):
        mem.append(decay * u)
        h = decay * u + y[:, t]
        s = (h >= 1).to(y.dtype)
        u = h * (1 - s)
        spikes.append(s)
    return torch.stack(mem, 1), torch.stack(spikes, 1)


def test_exact_targets_match_a_plain_loop():
    y = torch.randn(5, 300, dtype=torch.float64) * 1.3
    mem, spikes = exact_targets(y, 0.25)
    ref_mem, ref_spikes = _exact_loop(y, 0.25)
    torch.testing.assert_close(mem, ref_mem, rtol=0, atol=1e-12)
    assert torch.equal(spikes, ref_spikes)


def test_network_is_strictly_causal_over_eight_steps():
    net = SurrogateDynamicNetwork(0.125).eval()
    y = torch.randn(3, 64)
    changed = y.clone()
    changed[:, 40] += 5.0
    diff = (net(y) - net(changed)).abs().amax(0)
    assert torch.all(diff[:41] == 0)  # outputs up to t = 40 never see y[40]
    assert torch.all(diff[41:49] > 0)  # t = 41 .. 48 see it
    assert torch.all(diff[49:] == 0)  # beyond eight steps it is forgotten


@pytest.mark.parametrize("channels, kernel_size, depth", [(8, 8, 1), (5, 3, 1), (6, 8, 3)])
def test_window_form_equals_the_convolutions(channels, kernel_size, depth):
    """The CPU forward (matrix products on each step's window) against torch's Conv1d form:
    outputs, batch-norm statistics and parameter gradients, in training and after folding."""
    torch.manual_seed(1)
    nets = [SurrogateDynamicNetwork(0.5, channels, kernel_size, depth).double() for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    y = torch.randn(6, 50, dtype=torch.float64) * 1.5
    windows, convolutions = nets[0]._forward_windows(y), nets[1]._forward_convolutions(y)
    torch.testing.assert_close(windows, convolutions, rtol=0, atol=1e-12)
    (windows * torch.linspace(-1, 1, 50, dtype=torch.float64)).sum().backward()
    (convolutions * torch.linspace(-1, 1, 50, dtype=torch.float64)).sum().backward()
    for (name, a), b in zip(nets[0].named_parameters(), nets[1].parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=1e-10, msg=name)
    for a, b in zip(nets[0].buffers(), nets[1].buffers(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    folded = nets[0].folded()
    torch.testing.assert_close(folded._forward_windows(y), folded._forward_convolutions(y))


def test_inference_in_chunks_equals_one_pass(monkeypatch):
    """In eval mode on a CPU the rows go through in chunks of CHUNK_STEPS time steps."""
    import neurojoule.neuron.sdn as sdn_module

    net = SurrogateDynamicNetwork(0.25, depth=2).eval()
    y = torch.randn(7, 30)
    one_pass = net._forward_windows(y)
    monkeypatch.setattr(sdn_module, "CHUNK_STEPS", 60)  # 2 rows a chunk: 4 chunks
    torch.testing.assert_close(net(y), one_pass)
    monkeypatch.setattr(sdn_module, "CHUNK_STEPS", 10)  # fewer steps than a row: 1 row a chunk
    torch.testing.assert_close(net(y), one_pass)


@pytest.mark.parametrize("depth", [1, 3])
def test_folding_batchnorm_keeps_outputs(tmp_path, depth):
    net = SurrogateDynamicNetwork(0.25, depth=depth)
    with torch.no_grad():  # non-trivial statistics, as after training
        net(torch.randn(32, 200) * 2)
    net.eval()
    y = torch.randn(4, 200)
    torch.testing.assert_close(net.folded()(y), net(y), rtol=1e-5, atol=1e-5)
    path = tmp_path / "sdn.json"
    save_sdn(net, path, {"note": "test"})
    loaded = load_sdn(path=path)
    torch.testing.assert_close(loaded(y), net(y), rtol=1e-5, atol=1e-5)
    assert loaded.decay == 0.25 and loaded.depth == depth and loaded.metrics == {"note": "test"}
    assert json.loads(path.read_text())["format"] == "neurojoule-sdn-3"


def test_residual_layers_compute_what_the_docstring_says():
    """Depth 3 written out by hand from the layers: three residual ReLU blocks in a row."""
    torch.manual_seed(2)
    net = SurrogateDynamicNetwork(0.25, channels=4, kernel_size=8, depth=3).double().eval()
    with torch.no_grad():
        for norm in (net.temporal_norm, *net.mix_norms):
            norm.running_mean.uniform_(-0.5, 0.5)
            norm.running_var.uniform_(0.5, 2.0)
    y = torch.randn(2, 30, dtype=torch.float64)
    z = net.encode(y.unsqueeze(1))
    z = torch.relu(net.temporal_norm(net.temporal(z)[..., :30]))
    for i in range(3):
        z = torch.relu(net.mix_norms[i](net.mixes[i](z)) + z)
    torch.testing.assert_close(net(y), net.decode(z).squeeze(1), rtol=0, atol=1e-12)


def _older_format(payload: dict, version: int) -> dict:
    """A file of format -2 named the decay "tau"; format -1 also had no depth and named the
    residual layer `mix`."""
    payload = dict(payload, format=f"neurojoule-sdn-{version}", tau=payload.pop("decay"))
    if version == 1:
        del payload["depth"]
        payload["state"] = {k.replace("mixes.0.", "mix."): v for k, v in payload["state"].items()}
    return payload


@pytest.mark.parametrize("version", [1, 2])
def test_files_of_the_earlier_formats_load(tmp_path, version):
    net = SurrogateDynamicNetwork(0.125).eval()
    path = tmp_path / "old.json"
    save_sdn(net, path)
    path.write_text(json.dumps(_older_format(json.loads(path.read_text()), version)))
    y = torch.randn(3, 40)
    loaded = load_sdn(0.125, path=path)
    assert loaded.decay == 0.125
    torch.testing.assert_close(loaded(y), net(y), rtol=1e-5, atol=1e-5)


def test_the_shipped_files_are_of_the_earlier_formats():
    formats = {json.loads(shipped_path(d).read_text())["format"] for d in SHIPPED_DECAYS}
    assert formats <= {"neurojoule-sdn-1", "neurojoule-sdn-2"}


@pytest.mark.parametrize("decay", SHIPPED_DECAYS)
def test_shipped_networks_predict_spikes_of_the_exact_lif(decay):
    net = load_sdn(decay)
    assert net.decay == decay
    assert shipped_path(decay).stat().st_size < 16_000  # "a few KB"
    y = torch.randn(200, 1024, generator=torch.Generator().manual_seed(7))
    _, exact = _exact_loop(y, decay)
    agreement = (sdn_spikes(y, net) == exact).float().mean().item()
    assert agreement >= {0.125: 0.999, 0.25: 0.999, 0.5: 0.997}[decay]


def test_gradient_flows_only_through_the_direct_term():
    net = load_sdn(0.125)
    y = torch.randn(2, 50, requires_grad=True)
    sdn_spikes(y, net, "triangle").sum().backward()
    mem = net(y.detach())
    expected = torch.clamp(1 - (mem + y.detach() - 1).abs(), min=0)
    torch.testing.assert_close(y.grad, expected)


def test_unknown_decay_and_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="no SDN is shipped for decay 0.3"):
        load_sdn(0.3)
    with pytest.raises(ValueError, match="decay must be a number in"):
        SurrogateDynamicNetwork(1.5)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not a neurojoule SDN file"):
        load_sdn(path=bad)
    with pytest.raises(ValueError, match="input currents"):
        SurrogateDynamicNetwork(0.125)(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="depth >= 1"):
        SurrogateDynamicNetwork(0.125, depth=0)
