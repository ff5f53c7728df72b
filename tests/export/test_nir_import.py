"""Graphs written with the plain `nir` API, as another framework writes them: supported node
types import and run as NIR defines them (checked against loops written here from NIR's
equations, with numbers exact in binary so that the spikes agree bit for bit); unsupported types,
cycles, broken files and wrong inputs are one-line ValueErrors."""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neurojoule.export import import_nir, read_nir
from neurojoule.neuron import SpikingNeuron

# Dyadic numbers (multiples of 1/16, LIF decay 1/2): every LIF step below is exact in float32
# and float64, so the reference loop and the imported network must give the same spikes.
W1 = np.array([[0.5, -0.25, 1.0], [0.75, 0.5, -0.5], [1.0, 1.0, 0.25], [-0.5, 0.25, 0.75]])
B1 = np.array([0.125, 0.0, -0.0625, 0.25])
W2 = np.array([[1.0, -0.5, 0.25, 0.5], [0.25, 0.75, -1.0, 0.5]])
LIF_TAU, LIF_R, LIF_LEAK, LIF_RESET, LI_TAU = 2.0, 2.0, 0.25, -0.125, 4.0


def foreign_graph(dt_in_metadata: float | None = None, tau_scale: float = 1.0) -> nir.NIRGraph:
    """Input(3) -> Affine -> LIF(4) -> Linear -> LI(2) -> Output, as another tool writes it
    (float32 arrays, no neurojoule metadata)."""
    f32 = np.float32
    ones = np.ones(4, dtype=f32)
    nodes = {
        "in": nir.Input(input_type={"input": np.array([3])}),
        "fc1": nir.Affine(weight=W1.astype(f32), bias=B1.astype(f32)),
        "lif": nir.LIF(
            tau=ones * LIF_TAU * tau_scale,
            r=ones * LIF_R,
            v_leak=ones * LIF_LEAK,
            v_threshold=ones,
            v_reset=ones * LIF_RESET,
        ),
        "fc2": nir.Linear(weight=W2.astype(f32)),
        "li": nir.LI(
            tau=np.full(2, LI_TAU * tau_scale, f32), r=np.ones(2, f32), v_leak=np.zeros(2, f32)
        ),
        "out": nir.Output(output_type={"output": np.array([2])}),
    }
    edges = [("in", "fc1"), ("fc1", "lif"), ("lif", "fc2"), ("fc2", "li"), ("li", "out")]
    metadata = {} if dt_in_metadata is None else {"dt": dt_in_metadata}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NIR's definitions by forward Euler with dt = 1, float64: (spikes [T, B, 4], LI [T, B, 2])."""
    v = np.zeros((x.shape[1], 4))
    u = np.zeros((x.shape[1], 2))
    spikes, readout = [], []
    for x_t in x:
        current = x_t @ W1.T + B1
        v = v + 1.0 / LIF_TAU * (LIF_LEAK - v + LIF_R * current)
        fired = v > 1.0  # NIR: strictly above the threshold
        v = np.where(fired, LIF_RESET, v)
        u = u + 1.0 / LI_TAU * (0.0 - u + 1.0 * (fired @ W2.T))
        spikes.append(fired.astype(np.float64))
        readout.append(u.copy())
    return np.array(spikes), np.array(readout)


def inputs(steps: int = 12, batch: int = 5) -> np.ndarray:
    x = np.random.default_rng(0).integers(-16, 24, size=(steps, batch, 3)) / 16.0
    # one sample drives neuron 0 to exactly v = 1: NIR does not fire there, and neither may we
    x[:, 0] = 0.0
    x[0, 0] = [1.75 - 0.125 * 2, 0.0, 0.0]  # v = 0.125 + 0.5 * 2 * 0.875 = 1.0 (no spike)
    return x


def test_a_foreign_graph_runs_as_nir_defines_it(tmp_path):
    path = tmp_path / "foreign.nir"
    nir.write(path, foreign_graph())
    net = import_nir(path)
    assert isinstance(net.node("lif"), SpikingNeuron)
    x = inputs()
    spikes = {}
    net.node("lif").register_forward_hook(lambda m, i, out: spikes.update(lif=out))
    with torch.no_grad():
        out = net(torch.from_numpy(x).float())
    expected_spikes, expected_out = reference(x)
    assert 0 < expected_spikes.mean() < 1
    assert expected_spikes[0, 0, 0] == 0.0  # v was exactly at the threshold
    assert np.array_equal(spikes["lif"].numpy(), expected_spikes)
    # the LI's 3/4 decay needs more bits than float32 holds after a few steps
    np.testing.assert_allclose(out.numpy(), expected_out, rtol=1e-6, atol=1e-7)


def test_dt_comes_from_the_metadata_or_the_caller():
    x = torch.from_numpy(inputs()).float()
    expected = reference(inputs())[1]
    # time constants in milliseconds with a 1 ms step: the same discrete dynamics
    scaled = foreign_graph(dt_in_metadata=0.001, tau_scale=0.001)
    with torch.no_grad():
        assert np.allclose(import_nir(scaled)(x).numpy(), expected, atol=1e-6)
        assert np.allclose(
            import_nir(foreign_graph(tau_scale=0.001), dt=0.001)(x).numpy(), expected, atol=1e-6
        )
    with pytest.raises(ValueError, match="tau 0.002 below the time step dt=1"):
        import_nir(foreign_graph(tau_scale=0.001))


def test_conv_pool_and_flatten_nodes_run_as_torch_defines_them():
    rng = np.random.default_rng(1)
    weight = rng.normal(size=(4, 2, 3, 3)).astype(np.float32)
    bias = rng.normal(size=4).astype(np.float32)
    nodes = {
        "in": nir.Input(input_type={"input": np.array([2, 6, 6])}),
        "conv": nir.Conv2d(
            input_shape=(6, 6), weight=weight, stride=1, padding=1, dilation=1, groups=1, bias=bias
        ),  # fmt: skip
        "pool": nir.SumPool2d(
            kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])
        ),  # fmt: skip
        "avg": nir.AvgPool2d(
            kernel_size=np.array([3, 3]), stride=np.array([3, 3]), padding=np.array([0, 0])
        ),  # fmt: skip
        "flat": nir.Flatten(input_type={"input": np.array([4, 1, 1])}, start_dim=0, end_dim=-1),
        "scale": nir.Scale(scale=np.float32([1.0, -2.0, 0.5, 3.0])),
        "out": nir.Output(output_type={"output": np.array([4])}),
    }
    names = list(nodes)
    graph = nir.NIRGraph(nodes=nodes, edges=list(zip(names, names[1:], strict=False)))
    x = torch.randn(3, 2, 2, 6, 6)
    with torch.no_grad():
        out = import_nir(graph)(x)
        y = F.conv2d(x.flatten(0, 1), torch.from_numpy(weight), torch.from_numpy(bias), padding=1)
        y = F.avg_pool2d(y, 2) * 4
        y = y.mean((2, 3)) * torch.tensor([1.0, -2.0, 0.5, 3.0])
    torch.testing.assert_close(out, y.unflatten(0, (3, 2)))


def test_unsupported_node_types_are_named_in_one_line(tmp_path):
    f32 = np.ones(3, dtype=np.float32)
    nodes = {
        "in": nir.Input(input_type={"input": np.array([3])}),
        "cuba": nir.CubaLIF(
            tau_syn=f32 * 2, tau_mem=f32 * 4, r=f32, v_leak=f32 * 0, v_threshold=f32
        ),  # fmt: skip
        "gate": nir.Threshold(threshold=f32),
        "out": nir.Output(output_type={"output": np.array([3])}),
    }
    edges = [("in", "cuba"), ("cuba", "gate"), ("gate", "out")]
    path = tmp_path / "cuba.nir"
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=edges))
    with pytest.raises(ValueError) as error:
        import_nir(path)
    message = str(error.value)
    assert "\n" not in message
    assert "CubaLIF ('cuba')" in message and "Threshold ('gate')" in message
    assert "supported: Affine" in message


def test_recurrent_graphs_are_refused():
    f32 = np.ones(2, dtype=np.float32)
    nodes = {
        "in": nir.Input(input_type={"input": np.array([2])}),
        "lif": nir.LIF(tau=f32 * 2, r=f32, v_leak=f32 * 0, v_threshold=f32),
        "rec": nir.Linear(weight=np.eye(2, dtype=np.float32)),
        "out": nir.Output(output_type={"output": np.array([2])}),
    }
    edges = [("in", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "out")]
    graph = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    with pytest.raises(ValueError, match="recurrent"):
        import_nir(graph)


def test_missing_and_broken_files_are_value_errors(tmp_path):
    with pytest.raises(ValueError, match="no NIR file"):
        read_nir(tmp_path / "absent.nir")
    broken = tmp_path / "broken.nir"
    broken.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(ValueError, match="is not a readable NIR graph"):
        read_nir(broken)
    nir.write(tmp_path / "good.nir", foreign_graph())
    cut = tmp_path / "cut.nir"
    cut.write_bytes((tmp_path / "good.nir").read_bytes()[:600])
    with pytest.raises(ValueError, match="is not a readable NIR graph"):
        import_nir(cut)


def test_wrong_inputs_are_value_errors():
    net = import_nir(foreign_graph())
    with pytest.raises(ValueError, match=r"expects a float tensor \[T, B, 3\]"):
        net(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="expected tensors for the graph inputs"):
        net({"other": torch.zeros(2, 1, 3)})
