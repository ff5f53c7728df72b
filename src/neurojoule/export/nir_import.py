"""Read NIR graphs, ours or another framework's, into a torch module that runs in the library.

`import_nir(graph_or_path)` returns a NIRNetwork: each node becomes a module (Affine and
Linear nn.Linear, Conv1d/Conv2d nn.Conv1d/nn.Conv2d, AvgPool2d/SumPool2d pooling, Flatten,
Scale, LIF/IF our LIF through nir_neurons, LI/I a leaky integrator), run in topological
order on whole time-first sequences [T, B, *shape]: a node reads the sum of its incoming
edges, added in the order the graph lists the edges. The imported network runs in float32.
Some nodes run on a path that computes the same function faster: the fold and unfold convs of
an exported token mixing (nir_axis; announced in their metadata, every weight checked) run as
the matrix product and the reshape they are, and an AvgPool2d whose window is the whole input
runs as a global average (nn.AdaptiveAvgPool2d, as the spiking MLP's head).

Supported node types: SUPPORTED. Anything else (CubaLIF, CubaLI, Threshold, Delay, nested
graphs) is a one-line ValueError naming the nodes; so are recurrent graphs (cycles), which
would need a step-by-step run.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import nir
import numpy as np
import torch
from torch import nn

from neurojoule.export.nir_axis import AXIS_KEY, UNFOLD_KEY, fold_matrices, is_unfold
from neurojoule.export.nir_neurons import check_dt, neuron_module
from neurojoule.layers.mixer import AxisLinear
from neurojoule.layers.time_first import TimeFolded
from neurojoule.util.files import atomic_writer

SUPPORTED = (
    "Affine",
    "AvgPool2d",
    "Conv1d",
    "Conv2d",
    "Flatten",
    "I",
    "IF",
    "Input",
    "LI",
    "LIF",
    "Linear",
    "Output",
    "Scale",
    "SumPool2d",
)


def read_nir(path: str | Path) -> nir.NIRGraph:
    """The graph in a .nir file; a missing or unreadable file is a ValueError."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no NIR file at {path}")
    try:
        return nir.read(path)
    # h5py and nir raise many kinds for a file that is not a NIR graph (OSError, KeyError,
    # AssertionError, TypeError, ...); whatever it is, the file is at fault
    except Exception as error:
        detail = " ".join(str(error).split())[:200]
        raise ValueError(
            f"{path} is not a readable NIR graph ({type(error).__name__}"
            f"{': ' + detail if detail else ''})"
        ) from None


def write_nir(graph: nir.NIRGraph, path: str | Path) -> Path:
    """Write `graph` to `path` with nir.write, atomically (a temporary file, then a rename)."""
    buffer = io.BytesIO()
    nir.write(buffer, graph)
    with atomic_writer(path, "wb") as handle:
        handle.write(buffer.getvalue())
    return Path(path)


def import_nir(source: nir.NIRGraph | str | Path, *, dt: float | None = None) -> NIRNetwork:
    """A NIRNetwork running `source` (a graph, or a .nir file). `dt`: the time step of the
    forward-Euler neuron updates; default the graph's metadata "dt", else 1."""
    graph = source if isinstance(source, nir.NIRGraph) else read_nir(source)
    if dt is None:
        stored = np.asarray((graph.metadata or {}).get("dt", 1.0))
        dt = stored.item() if stored.size == 1 else str(stored)
    return NIRNetwork(graph, check_dt(dt))


class NIRNetwork(nn.Module):
    """A NIR graph as a torch module on time-first sequences.

    forward(x): x is [T, B, *input shape] for a graph with one Input node, or a mapping from
    Input node names to such tensors; returns the Output node's [T, B, *shape], or a dict by
    Output node name when the graph has several. `node(name)` is the module of a node (for
    hooks); `metadata` and `dt` are the graph's.
    """

    def __init__(self, graph: nir.NIRGraph, dt: float):
        super().__init__()
        _check_supported(graph)
        self.dt = dt
        self.metadata = dict(graph.metadata or {})
        self.input_shapes = {
            name: _input_shape(node, name)
            for name, node in graph.nodes.items()
            if isinstance(node, nir.Input)
        }
        self.output_names = [n for n, node in graph.nodes.items() if isinstance(node, nir.Output)]
        if not self.input_shapes or not self.output_names:
            raise ValueError(
                "a NIR graph to import needs at least one Input and one Output node, got "
                f"{len(self.input_shapes)} and {len(self.output_names)}"
            )
        self.sources = {name: [] for name in graph.nodes}
        for source, target in graph.edges:
            if source not in graph.nodes or target not in graph.nodes:
                raise ValueError(f"NIR edge ({source!r}, {target!r}) names a node the graph lacks")
            self.sources[target].append(source)
        self.order = _topological_order(graph, self.sources)
        self.layers = nn.ModuleDict()
        self.module_keys: dict[str, str] = {}
        with torch.random.fork_rng(devices=[]):  # module init must not move the global RNG
            for name in self.order:
                node = graph.nodes[name]
                if isinstance(node, nir.Output):
                    continue
                key = _module_key(name, self.layers)
                self.layers[key] = _module(node, name, dt)
                self.module_keys[name] = key

    def node(self, name: str) -> nn.Module:
        """The module that runs the node `name`."""
        if name not in self.module_keys:
            raise ValueError(f"the graph has no computing node {name!r}")
        return self.layers[self.module_keys[name]]

    def forward(self, x: torch.Tensor | Mapping[str, torch.Tensor]):
        values = self._bind(x)
        for name in self.order:
            inputs = [values[source] for source in self.sources[name]]
            total = inputs[0]
            for value in inputs[1:]:
                total = total + value
            values[name] = (
                self.layers[self.module_keys[name]](total) if name in self.module_keys else total
            )
        if len(self.output_names) == 1:
            return values[self.output_names[0]]
        return {name: values[name] for name in self.output_names}

    def _bind(self, x) -> dict[str, torch.Tensor]:
        if isinstance(x, torch.Tensor):
            if len(self.input_shapes) != 1:
                raise ValueError(
                    f"the graph has {len(self.input_shapes)} inputs; pass a mapping from their "
                    f"names ({', '.join(sorted(self.input_shapes))}) to tensors"
                )
            x = {next(iter(self.input_shapes)): x}
        if not isinstance(x, Mapping) or set(x) != set(self.input_shapes):
            given = sorted(x) if isinstance(x, Mapping) else type(x).__name__
            raise ValueError(
                f"expected tensors for the graph inputs {sorted(self.input_shapes)}, got {given}"
            )
        for name, value in x.items():
            shape = self.input_shapes[name]
            if (
                not isinstance(value, torch.Tensor)
                or not value.is_floating_point()
                or value.dim() != 2 + len(shape)
                or tuple(value.shape[2:]) != shape
                or value.shape[0] == 0
                or value.shape[1] == 0
            ):
                got = (
                    f"{value.dtype} of shape {tuple(value.shape)}"
                    if isinstance(value, torch.Tensor)
                    else type(value).__name__
                )
                raise ValueError(
                    f"graph input {name!r} expects a float tensor [T, B, "
                    f"{', '.join(map(str, shape))}] (time first, T and B >= 1), got {got}"
                )
        return dict(x)

    def extra_repr(self) -> str:
        return f"dt={self.dt:g}, inputs={list(self.input_shapes)}, outputs={self.output_names}"


# ---- checks -------------------------------------------------------------------------------


def _check_supported(graph: nir.NIRGraph) -> None:
    unsupported: dict[str, list[str]] = {}
    for name, node in graph.nodes.items():
        kind = type(node).__name__
        if kind not in SUPPORTED:
            unsupported.setdefault(kind, []).append(name)
    if unsupported:
        found = "; ".join(
            f"{kind} ({', '.join(repr(n) for n in names[:3])}{' ...' * (len(names) > 3)})"
            for kind, names in sorted(unsupported.items())
        )
        raise ValueError(
            f"cannot import NIR node types {sorted(unsupported)}: {found}; supported: "
            f"{', '.join(SUPPORTED)}"
        )


def _input_shape(node: nir.Input, name: str) -> tuple[int, ...]:
    shape = (node.input_type or {}).get("input")
    if shape is None:
        raise ValueError(f"NIR Input node {name!r} has no shape")
    return tuple(int(s) for s in np.asarray(shape).ravel())


def _topological_order(graph: nir.NIRGraph, sources: dict[str, list[str]]) -> list[str]:
    """Every node but the Inputs, each after its sources (the graph's node order among ties)."""
    for name, node in graph.nodes.items():
        if not isinstance(node, nir.Input) and not sources[name]:
            raise ValueError(f"NIR node {name!r} ({type(node).__name__}) has no incoming edge")
        if isinstance(node, nir.Input) and sources[name]:
            raise ValueError(f"NIR Input node {name!r} has incoming edges")
    waiting = {name: len(set(srcs)) for name, srcs in sources.items()}
    consumers: dict[str, list[str]] = {name: [] for name in graph.nodes}
    for name, srcs in sources.items():
        for source in dict.fromkeys(srcs):
            consumers[source].append(name)
    ready = [name for name, node in graph.nodes.items() if isinstance(node, nir.Input)]
    order: list[str] = []
    while ready:
        name = ready.pop(0)
        if not isinstance(graph.nodes[name], nir.Input):
            order.append(name)
        for consumer in consumers[name]:
            waiting[consumer] -= 1
            if waiting[consumer] == 0:
                ready.append(consumer)
    left = [name for name, count in waiting.items() if count > 0]
    if left:
        raise ValueError(
            f"the NIR graph is recurrent (a cycle through {', '.join(map(repr, left[:4]))}); "
            "only feed-forward graphs can be imported"
        )
    return order


def _module_key(name: str, taken: nn.ModuleDict) -> str:
    base = name.replace(".", "_") or "node"
    key, index = base, 1
    while key in taken or hasattr(taken, key):
        key, index = f"{base}_{index}", index + 1
    return key


# ---- nodes --------------------------------------------------------------------------------


def _module(node: nir.NIRNode, name: str, dt: float) -> nn.Module:
    if isinstance(node, (nir.LIF, nir.IF, nir.LI, nir.I)):
        return neuron_module(node, dt, name)
    if isinstance(node, (nir.Affine, nir.Linear)):
        return _linear(node, name)
    if isinstance(node, nir.Conv2d):
        return TimeFolded(_conv2d(node, name))
    if isinstance(node, nir.Conv1d):
        return TimeFolded(_conv1d(node, name))
    if isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
        return TimeFolded(_pool(node, name))
    if isinstance(node, nir.Flatten):
        return nn.Flatten(_time_first_dim(node.start_dim), _time_first_dim(node.end_dim))
    if isinstance(node, nir.Scale):
        return Scale(np.asarray(node.scale))
    raise AssertionError(type(node).__name__)  # _check_supported lets no other type through


class Scale(nn.Module):
    """NIR's Scale: x * scale, elementwise."""

    def __init__(self, scale: np.ndarray):
        super().__init__()
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def _time_first_dim(dim) -> int:
    """A NIR dim (of one step of one sample) as a dim of [T, B, ...]."""
    dim = int(np.asarray(dim))
    return dim + 2 if dim >= 0 else dim


def _tensor(values) -> torch.Tensor:
    return torch.as_tensor(np.array(values, dtype=np.float32))


def _linear(node, name: str) -> nn.Linear:
    weight = np.asarray(node.weight)
    if weight.ndim != 2:
        raise ValueError(
            f"NIR node {name!r}: expected a weight [out, in], got shape {list(weight.shape)}"
        )
    bias = getattr(node, "bias", None)
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(_tensor(weight))
        if bias is not None:
            layer.bias.copy_(_tensor(np.broadcast_to(bias, (weight.shape[0],))))
    return layer


def _ints(value, count: int, name: str, field: str) -> tuple[int, ...]:
    values = np.atleast_1d(np.asarray(value)).astype(np.int64).ravel()
    if values.size == 1:
        values = np.repeat(values, count)
    if values.size != count:
        raise ValueError(f"NIR node {name!r}: expected {count} values of {field}, got {value}")
    return tuple(int(v) for v in values)


def _padding(value, count: int, name: str):
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        return value
    return _ints(value, count, name, "padding")


def _input_side(node) -> tuple[int, ...] | None:
    """The spatial size of a node's input, where the graph's types say it."""
    shape = (node.input_type or {}).get("input")
    return None if shape is None else tuple(int(s) for s in np.asarray(shape)[1:])


def _conv2d(node: nir.Conv2d, name: str) -> nn.Module:
    weight = np.asarray(node.weight)
    groups = int(np.asarray(node.groups))
    stride = _ints(node.stride, 2, name, "stride")
    padding = _padding(node.padding, 2, name)
    dilation = _ints(node.dilation, 2, name, "dilation")
    fast = _axis_path(node, weight, groups, stride, padding, dilation)
    if fast is not None:
        return fast
    out_channels, per_group, *kernel = weight.shape
    conv = nn.Conv2d(per_group * groups, out_channels, kernel, stride, padding, dilation, groups)
    return _filled(conv, weight, node.bias)


def _axis_path(node, weight, groups, stride, padding, dilation) -> nn.Module | None:
    """The fast path of a fold or unfold conv (nir_axis) that its metadata announces and its
    weights confirm; None for any other conv."""
    metadata = node.metadata or {}
    if dilation != (1, 1) or groups != 1 or isinstance(padding, str):
        return None
    if AXIS_KEY in metadata:
        axis = int(np.asarray(metadata[AXIS_KEY]))
        matrices = fold_matrices(weight, stride, padding, axis) if axis in (2, 3) else None
        if matrices is not None:
            return AxisMixing(matrices, np.asarray(node.bias), axis)
    if UNFOLD_KEY in metadata:
        axis = int(np.asarray(metadata[UNFOLD_KEY]))
        bias_free = not np.any(np.asarray(node.bias))
        if axis in (2, 3) and bias_free and is_unfold(weight, stride, padding, axis):
            return Unfold(axis, weight.shape[0])
    return None


def _conv1d(node: nir.Conv1d, name: str) -> nn.Conv1d:
    weight = np.asarray(node.weight)
    groups = int(np.asarray(node.groups))
    out_channels, per_group, kernel = weight.shape
    conv = nn.Conv1d(
        per_group * groups,
        out_channels,
        kernel,
        _ints(node.stride, 1, name, "stride"),
        _padding(node.padding, 1, name),
        _ints(node.dilation, 1, name, "dilation"),
        groups,
    )
    return _filled(conv, weight, node.bias)


def _filled(conv: nn.Module, weight: np.ndarray, bias) -> nn.Module:
    with torch.no_grad():
        conv.weight.copy_(_tensor(weight))
        conv.bias.copy_(_tensor(np.broadcast_to(bias, (weight.shape[0],))))
    return conv


class AxisMixing(nn.Module):
    """The fold conv of an exported AxisLinear (nir_axis), run as that AxisLinear: [N, C, H, W]
    -> [N, C*H, 1, W'] (axis 2) or [N, C*W, H', 1] (axis 3), channel c*K + g holding position
    g of channel c after mixing. For even K the fold has one more column (row) than the input,
    which reads only zero padding and so holds the bias."""

    def __init__(self, matrices: np.ndarray, bias: np.ndarray, axis: int):
        super().__init__()
        channels, size, _ = matrices.shape
        self.mixing = AxisLinear(size, axis, groups=channels)
        with torch.no_grad():
            self.mixing.weight.copy_(_tensor(matrices))
            bias = np.broadcast_to(bias, (channels * size,)).reshape(channels, size)
            self.mixing.bias.copy_(_tensor(bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mixing(x)
        n, c, h, w = y.shape
        size = self.mixing.size
        if self.mixing.axis == 2:
            folded = y.reshape(n, c * h, 1, w)
        else:
            folded = y.transpose(2, 3).reshape(n, c * w, h, 1)
        if size % 2:
            return folded
        extra = self.mixing.bias.reshape(1, -1, 1, 1).to(folded.dtype)
        extra = extra.expand(n, -1, *(1, 1))
        return torch.cat([folded, extra], dim=3 if self.mixing.axis == 2 else 2)


class Unfold(nn.Module):
    """The unfold conv of nir_axis (one-hot weights) as the reshape it is: [N, C*K, 1, W']
    -> [N, C, K, W] (axis 2) or [N, C*K, H', 1] -> [N, C, H, K] (axis 3), dropping the extra
    column (row) of an even K."""

    def __init__(self, axis: int, channels: int):
        super().__init__()
        self.axis, self.channels = axis, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, folded, h, w = x.shape
        size = folded // self.channels
        if self.axis == 2:
            return x[..., : w - 1 + size % 2].reshape(n, self.channels, size, -1)
        kept = x[:, :, : h - 1 + size % 2, 0]
        return kept.reshape(n, self.channels, size, -1).transpose(2, 3)

    def extra_repr(self) -> str:
        return f"axis={self.axis}, channels={self.channels}"


def _pool(node, name: str) -> nn.Module:
    kernel = _ints(node.kernel_size, 2, name, "kernel_size")
    stride = _ints(node.stride, 2, name, "stride")
    padding = _ints(node.padding, 2, name, "padding")
    if isinstance(node, nir.SumPool2d):
        return nn.AvgPool2d(kernel, stride, padding, divisor_override=1)
    if _input_side(node) == kernel and padding == (0, 0):
        return nn.AdaptiveAvgPool2d(1)  # the window is the whole input: a global average
    return nn.AvgPool2d(kernel, stride, padding)
