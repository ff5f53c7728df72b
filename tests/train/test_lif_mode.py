"""Which devices `lif_mode: auto` times: a CUDA GPU once triton gives it a fused exact LIF."""

import pytest

from neurojoule.train import lif_mode


@pytest.mark.parametrize(
    ("device", "triton", "expected"),
    [
        ("cpu", False, "bptt"),
        ("cpu", True, "bptt"),  # triton changes nothing on a CPU
        ("cuda", False, "sdn"),  # the exact LIF is a loop of torch kernels there
        ("cuda", True, None),  # the fused Triton kernel against the SDN: timed
        ("mps", False, None),
        ("mps", True, None),
    ],
)
def test_the_default_mode_gives_way_to_timing_on_cuda_with_triton(
    device, triton, expected, monkeypatch
):
    monkeypatch.setattr(lif_mode, "triton_available", lambda: triton)
    assert lif_mode.default_lif_mode(device) == expected


@pytest.mark.parametrize(("defaults", "expected"), [({}, "bptt"), ({"cpu": "sdn"}, "sdn")])
def test_a_data_parallel_run_takes_the_fixed_default_without_timing(
    defaults, expected, monkeypatch
):
    import torch

    from neurojoule.layers import ssm_neurons
    from neurojoule.models import build_model

    def refuse(*args):
        raise AssertionError("a data-parallel run timed the modes")

    monkeypatch.setattr(lif_mode, "DEFAULT_LIF_MODE", defaults)
    monkeypatch.setattr(lif_mode, "_step_seconds", refuse)
    model = build_model("spiking-ssm", d_model=4, n_layers=1, d_state=4, in_channels=1)
    batch = torch.randn(2, 16, 1), torch.tensor([0, 1])
    record = lif_mode.choose_lif_mode(model, batch, processes=2)
    assert record["chosen"] == expected and "data-parallel" in record["rule"]
    assert {neuron.mode for neuron in ssm_neurons(model).values()} == {expected}
