"""Export spiking networks to NIR graphs (the neuromorphic intermediate representation).

What is exported (docs/nir.md has the full story):
- dense-snn (DenseSNN): Input [C, S, S] -> Flatten -> (Affine -> LIF) per hidden layer ->
  Affine read-out -> Output: the read-out at each time step.
- the spiking MLP (SpikingMLP), after its batch norms are folded into the synapses
  (energy.fold_batchnorm), from the image to the head's per-step logits. NIR has no
  concatenation, reshape or per-channel matrix product, so two parts are written in NIR's
  terms: token mixing along H or W (AxisLinear) is a pair of Conv2d nodes, `mix_h` that moves
  the positions into channels and `mix_h.unfold` that moves them back (nir_axis), and a
  concatenation is one one-hot 1x1 Conv2d node per part (`cat.k`) placing it in its channels
  of the consumer's input, which NIR sums. Residual sums are edges into the same node, listed
  in the order the model adds them.
- SpikingSSM (any model with SpikingS4DBlock blocks: SequenceClassifier, CausalLM): per block
  only its spiking part, graph input `<block>.current` (what the neuron reads: the S4D output
  plus D u) -> LIF -> Affine (the 1x1 conv H -> 2H) -> graph output `<block>.conv_out`. Cut:
  the S4D convolution (a long, possibly bidirectional kernel computed by FFT; no NIR node
  runs it), the GLU, norms, residual sums, encoder and decoder. The metadata lists them.

Time is implicit in NIR: every node runs once per time step, and the graph's input at each
step is, for the image models, the image (direct encoding, `time_steps` of them in the
metadata); their logits are the mean over the steps of the graph's output. Neurons: see
nir_neurons (forward Euler with the metadata's dt, thresholds nudged for NIR's strict >).
"""

from __future__ import annotations

import json

import nir
import numpy as np
import torch
from torch import nn

from neurojoule.energy import fold_batchnorm, unfolded_batchnorms
from neurojoule.export.nir_axis import AXIS_KEY, UNFOLD_KEY, fold_kernel, unfold_kernel
from neurojoule.export.nir_neurons import check_dt, neuron_node
from neurojoule.layers.mixer import AxisLinear, ChannelBlock, MixerBlock, TokenBlock
from neurojoule.layers.patch import PatchMerging, SpikingPatchEncoding
from neurojoule.layers.spiking_ssm import SpikingS4DBlock
from neurojoule.layers.time_first import TimeFolded
from neurojoule.models import DenseSNN, SpikingMLP
from neurojoule.neuron import LIF

CUT_KEY = "cut"
THRESHOLD_NOTE = (
    "NIR spikes at v > v_threshold, neurojoule at h >= threshold: v_threshold is the largest "
    "float32 below neurojoule's threshold, the same spikes for float32 potentials"
)
EULER_NOTE = "forward Euler with step dt: v <- v + dt/tau (v_leak - v + R I); v = 0 at the start"


def export_nir(model: nn.Module, *, dt: float = 1.0, name: str | None = None) -> nir.NIRGraph:
    """The NIR graph of a dense-snn, a spiking MLP (folded) or a SpikingSSM's spiking parts.

    `dt`: the length of one time step in the graph's time unit (stored as metadata "dt").
    `name`: the model's registry name for the metadata (the class name when None). Any other
    model, a soft-reset neuron or a batch norm that cannot be folded is a ValueError.
    """
    dt = check_dt(dt)
    if isinstance(model, DenseSNN):
        graph, extra = _dense(model, dt), _direct_encoding(model.config.steps)
    elif isinstance(model, SpikingMLP):
        graph, extra = _spiking_mlp(model, dt), _direct_encoding(model.config.steps)
    elif any(isinstance(m, SpikingS4DBlock) for m in model.modules()):
        graph, extra = _spiking_ssm(model, dt)
    else:
        raise ValueError(
            f"cannot export a {type(model).__name__} to NIR: expected a dense-snn, a spiking "
            "MLP or a model with SpikingSSM blocks (spiking-ssm, spiking-ssm-lm)"
        )
    from neurojoule import __version__

    metadata = {
        "generator": f"neurojoule {__version__}",
        "model": name or type(model).__name__,
        "dt": dt,
        "discretisation": EULER_NOTE,
        "threshold": THRESHOLD_NOTE,
        CUT_KEY: json.dumps(extra.pop(CUT_KEY, [])),
        **extra,
    }
    return graph.build(metadata)


def summarize(graph: nir.NIRGraph) -> dict:
    """Plain facts about a graph: model, node and edge counts, inputs, outputs, neuron nodes,
    dt and the parts cut out of it (from the metadata a neurojoule export writes)."""
    metadata = graph.metadata or {}
    cut = metadata.get(CUT_KEY, "[]")
    try:
        cut = json.loads(cut) if isinstance(cut, str) else []
    except json.JSONDecodeError:
        cut = [cut]
    neurons = sum(isinstance(n, (nir.LIF, nir.IF)) for n in graph.nodes.values())
    return {
        "model": str(metadata.get("model", "?")),
        "nodes": len(graph.nodes),
        "edges": len(graph.edges),
        "inputs": sorted(graph.inputs),
        "outputs": sorted(graph.outputs),
        "spiking_nodes": neurons,
        "dt": float(metadata.get("dt", 1.0)),
        "time_steps": int(metadata["time_steps"]) if "time_steps" in metadata else None,
        "cut": cut,
    }


def format_summary(summary: dict, path: str) -> str:
    """One line: what was written where, and what was cut."""
    steps = f", T={summary['time_steps']}" if summary["time_steps"] else ""
    text = (
        f"wrote {path}: {summary['model']}, {summary['nodes']} nodes, {summary['edges']} edges, "
        f"{len(summary['inputs'])} input(s), {len(summary['outputs'])} output(s), "
        f"{summary['spiking_nodes']} LIF node(s), dt={summary['dt']:g}{steps}"
    )
    return text + (f"; cut: {'; '.join(summary['cut'])}" if summary["cut"] else "; nothing cut")


def _direct_encoding(steps: int) -> dict:
    return {
        "time_steps": steps,
        "encoding": "direct: the same input at each of time_steps steps",
        "readout": "the model's logits are the mean over the time steps of the output",
    }


# ---- graph building -----------------------------------------------------------------------


class _Graph:
    """Nodes and edges in the order added, with each node's per-step output shape. Edges into
    a node are in the order its inputs were summed in the model (the importer sums them so)."""

    def __init__(self, dt: float):
        self.dt = dt
        self.nodes: dict[str, nir.NIRNode] = {}
        self.edges: list[tuple[str, str]] = []
        self.shape: dict[str, tuple[int, ...]] = {}

    def add(self, name: str, node: nir.NIRNode, inputs, shape=None) -> str:
        inputs = [inputs] if isinstance(inputs, str) else list(inputs)
        assert name not in self.nodes, name
        self.nodes[name] = node
        self.edges += [(source, name) for source in inputs]
        if shape is None:
            shape = node.output_type["output"] if node.output_type else None
        self.shape[name] = tuple(int(s) for s in shape) if shape is not None else None
        return name

    def input(self, name: str, shape) -> str:
        return self.add(name, nir.Input(input_type={"input": np.array(shape)}), [], shape)

    def output(self, name: str, source: str) -> str:
        shape = np.array(self.shape[source])
        return self.add(name, nir.Output(output_type={"output": shape}), source, shape)

    def neuron(self, name: str, layer: LIF, inputs) -> str:
        shape = self.shape[_first(inputs)]
        return self.add(name, neuron_node(layer, shape, self.dt, name), inputs, shape)

    def affine(self, name: str, weight: torch.Tensor, bias: torch.Tensor | None, inputs) -> str:
        """nir.Affine (nir.Linear without a bias) of a [out, in] weight."""
        weight = _numpy(weight)
        if bias is None:
            return self.add(name, nir.Linear(weight=weight), inputs, (weight.shape[0],))
        node = nir.Affine(weight=weight, bias=_numpy(bias))
        return self.add(name, node, inputs, (weight.shape[0],))

    def conv(self, name: str, unit: nn.Module, inputs) -> str:
        """The Conv2d of `unit` (a Conv2d, or a folded conv + BN unit) as nir.Conv2d."""
        conv = _only(unit, nn.Conv2d, name)
        if conv.padding_mode != "zeros":
            raise ValueError(
                f"cannot export conv {name!r}: NIR pads with zeros, it pads with "
                f"{conv.padding_mode!r}"
            )
        bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
        settings = (conv.stride, conv.padding, conv.dilation, conv.groups)
        return self.conv_weights(name, _numpy(conv.weight), _numpy(bias), inputs, *settings)

    def conv_weights(self, name, weight, bias, inputs, stride=1, padding=0, dilation=1,
                     groups=1, metadata=None) -> str:  # fmt: skip
        channels, *side = self.shape[_first(inputs)]
        node = nir.Conv2d(
            input_shape=tuple(side),
            weight=weight,
            stride=_pair(stride),
            padding=padding if isinstance(padding, str) else _pair(padding),
            dilation=_pair(dilation),
            groups=groups,
            bias=bias,
            metadata=metadata or {},
        )
        return self.add(name, node, inputs)

    def build(self, metadata: dict) -> nir.NIRGraph:
        return nir.NIRGraph(nodes=self.nodes, edges=self.edges, metadata=metadata)


def _first(inputs) -> str:
    return inputs if isinstance(inputs, str) else inputs[0]


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().copy()


def _only(module: nn.Module, kind: type, name: str) -> nn.Module:
    """The one `kind` layer of a folded unit (TimeFolded(Sequential(layer, Identity ...)))."""
    if isinstance(module, TimeFolded):
        module = module.module
    parts = list(module) if isinstance(module, nn.Sequential) else [module]
    kept = [m for m in parts if not isinstance(m, (nn.Identity, nn.Dropout))]
    if len(kept) != 1 or not isinstance(kept[0], kind):
        found = ", ".join(type(m).__name__ for m in kept) or "nothing"
        raise ValueError(
            f"cannot export {name!r} to NIR: expected a single {kind.__name__} once batch norms "
            f"are folded, found {found}"
        )
    return kept[0]


# ---- dense-snn ----------------------------------------------------------------------------


def _dense(model: DenseSNN, dt: float) -> _Graph:
    c = model.config
    g = _Graph(dt)
    g.input("input", (c.in_channels, c.image_size, c.image_size))
    image = np.array([c.in_channels, c.image_size, c.image_size])
    x = g.add("flatten", nir.Flatten(input_type={"input": image}, start_dim=0, end_dim=-1),
              "input", (c.in_features,))  # fmt: skip
    for index, layer in enumerate(model.features):
        name = f"features.{index}"
        if isinstance(layer, nn.Linear):
            x = g.affine(name, layer.weight, layer.bias, x)
        elif isinstance(layer, LIF):
            x = g.neuron(name, layer, x)
        else:
            raise ValueError(f"cannot export {name} ({type(layer).__name__}) of a DenseSNN")
    readout = model.readout
    g.output("output", g.affine("readout", readout.weight, readout.bias, x))
    return g


# ---- spiking MLP --------------------------------------------------------------------------


def _spiking_mlp(model: SpikingMLP, dt: float) -> _Graph:
    folded = fold_batchnorm(model)
    left = unfolded_batchnorms(folded)
    if left:
        raise ValueError(
            f"cannot export the spiking MLP to NIR: batch norms {left[:3]} do not fold into a "
            "synapse and NIR has no batch norm"
        )
    c = folded.config
    g = _Graph(dt)
    g.input("input", (c.in_channels, c.image_size, c.image_size))
    x = None
    for i, stage in enumerate(folded.stages):
        prefix = f"stages.{i}"
        if i == 0:
            residual = [g.conv("stem.conv_bn", folded.stem.conv_bn, "input")]
        elif isinstance(stage.embed, SpikingPatchEncoding):
            residual = _patch_encoding(g, f"{prefix}.embed", stage.embed, x)
        elif isinstance(stage.embed, PatchMerging):
            residual = [g.conv(f"{prefix}.embed.merge", stage.embed.merge, x)]
        else:
            raise ValueError(f"cannot export {prefix}.embed ({type(stage.embed).__name__})")
        x = g.neuron(f"{prefix}.lif", stage.lif, residual)
        for j, block in enumerate(stage.blocks):
            residual, x = _mixer_block(g, f"{prefix}.blocks.{j}", block, residual, x)
    g.output("output", _head(g, folded.head.module, x))
    return g


def _patch_encoding(g: _Graph, prefix: str, spe: SpikingPatchEncoding, x: str) -> list[str]:
    """n1, n2, n3 = conv branches; n2 += cross_12(LIF(n1)); n3 += n1 + cross_23(LIF(n2));
    returns the nodes whose sum is concat(n1, n2, n3). Each list below is a sum, in the
    model's order."""
    b1, b2, b3 = (g.conv(f"{prefix}.branches.{k}", b, x) for k, b in enumerate(spe.branches))
    spikes_1 = g.neuron(f"{prefix}.lif_1", spe.lif_1, b1)
    n2 = [b2, g.conv(f"{prefix}.cross_12", spe.cross_12, spikes_1)]
    spikes_2 = g.neuron(f"{prefix}.lif_2", spe.lif_2, n2)
    n3 = [b3, b1, g.conv(f"{prefix}.cross_23", spe.cross_23, spikes_2)]
    return _concatenate(g, f"{prefix}.cat", [[b1], n2, n3])


def _concatenate(g: _Graph, prefix: str, parts: list[list[str]]) -> list[str]:
    """One-hot 1x1 Conv2d nodes that place each part (the sum of its nodes) in its channels of
    the concatenation; the sum of the returned nodes is the concatenation, exactly."""
    widths = [g.shape[part[0]][0] for part in parts]
    total, placed, start = sum(widths), [], 0
    for k, (part, width) in enumerate(zip(parts, widths, strict=True)):
        weight = np.zeros((total, width, 1, 1), dtype=np.float32)
        weight[start + np.arange(width), np.arange(width), 0, 0] = 1.0
        bias = np.zeros(total, dtype=np.float32)
        placed.append(g.conv_weights(f"{prefix}.{k}", weight, bias, part))
        start += width
    return placed


def _mixer_block(g: _Graph, prefix: str, block: MixerBlock, residual: list[str], x: str):
    """r += token(x); x = LIF(r); r += channel(x); x = LIF(r). Returns (r's nodes, x)."""
    residual = residual + [_token_block(g, f"{prefix}.token", block.token, x)]
    x = g.neuron(f"{prefix}.lif_token", block.lif_token, residual)
    residual = residual + [_channel_block(g, f"{prefix}.channel", block.channel, x)]
    return residual, g.neuron(f"{prefix}.lif_channel", block.lif_channel, residual)


def _token_block(g: _Graph, prefix: str, token: TokenBlock, x: str) -> str:
    """fuse(concat(x, LIF(mix_h(x)), LIF(mix_w(x)))); returns the fuse conv."""
    mixed_h = _axis_mixing(g, f"{prefix}.mix_h", token.mix_h, x)
    mixed_w = _axis_mixing(g, f"{prefix}.mix_w", token.mix_w, x)
    x_h = g.neuron(f"{prefix}.lif_h", token.lif_h, mixed_h)
    x_w = g.neuron(f"{prefix}.lif_w", token.lif_w, mixed_w)
    parts = _concatenate(g, f"{prefix}.cat", [[x], [x_h], [x_w]])
    return g.conv(f"{prefix}.fuse", token.fuse, parts)


def _axis_mixing(g: _Graph, name: str, unit: nn.Module, x: str) -> str:
    """AxisLinear (batch norm folded in: one matrix per channel) as a fold conv `name` and an
    unfold conv `name.unfold` (see nir_axis); returns the unfold, [C, H, W] like x."""
    mixing = _only(unit, AxisLinear, name)
    channels = g.shape[x][0]
    size, axis = mixing.size, mixing.axis
    matrices = _numpy(mixing.weight.detach().expand(channels, size, size))
    bias = _numpy(mixing.bias.detach().expand(channels, size).reshape(-1))
    weight, stride, padding = fold_kernel(matrices, axis)
    folded = g.conv_weights(name, weight, bias, x, stride, padding, metadata={AXIS_KEY: axis})
    weight, stride, padding = unfold_kernel(channels, size, axis, matrices.dtype)
    zeros = np.zeros(channels, dtype=matrices.dtype)
    metadata = {UNFOLD_KEY: axis}
    return g.conv_weights(
        f"{name}.unfold", weight, zeros, folded, stride, padding, metadata=metadata
    )


def _channel_block(g: _Graph, prefix: str, channel: ChannelBlock, x: str) -> str:
    expand = g.conv(f"{prefix}.expand", channel.expand, x)
    spikes = g.neuron(f"{prefix}.lif", channel.lif, expand)
    return g.conv(f"{prefix}.project", channel.project, spikes)


def _head(g: _Graph, head: nn.Sequential, x: str) -> str:
    """The folded head: 1x1 Conv2d, global average pooling, Flatten."""
    for index, layer in enumerate(head):
        name = f"head.module.{index}"
        if isinstance(layer, (nn.Identity, nn.Dropout)):
            continue
        if isinstance(layer, nn.Conv2d):
            x = g.conv(name, layer, x)
        elif isinstance(layer, nn.AdaptiveAvgPool2d) and layer.output_size in (1, (1, 1)):
            side = np.array(g.shape[x][1:])
            pool = nir.AvgPool2d(kernel_size=side, stride=side, padding=np.array([0, 0]))
            x = g.add(name, pool, x, (g.shape[x][0], 1, 1))
        elif isinstance(layer, nn.Flatten) and layer.start_dim == 1 and layer.end_dim == -1:
            shape = np.array(g.shape[x])
            node = nir.Flatten(input_type={"input": shape}, start_dim=0, end_dim=-1)
            x = g.add(name, node, x, (int(np.prod(shape)),))
        else:
            raise ValueError(f"cannot export head layer {type(layer).__name__} to NIR")
    return x


# ---- SpikingSSM ---------------------------------------------------------------------------


def _spiking_ssm(model: nn.Module, dt: float) -> tuple[_Graph, dict]:
    g = _Graph(dt)
    blocks = []
    for name, block in model.named_modules():
        if not isinstance(block, SpikingS4DBlock):
            continue
        blocks.append(name)
        channels = block.neuron.channels or block.conv.in_channels
        current = g.input(f"{name}.current", (channels,))
        spikes = g.neuron(f"{name}.neuron", block.neuron, current)
        conv = block.conv  # kernel size 1: an Affine at each step
        synapses = g.affine(f"{name}.conv", conv.weight[:, :, 0], conv.bias, spikes)
        g.output(f"{name}.conv_out", synapses)
    cut = [
        f"the S4D convolution of each block ({', '.join(blocks)}): its output plus D u "
        "enters as the graph input <block>.current",
        "the GLU after each block's 1x1 conv: it reads the graph output <block>.conv_out",
        "encoder, norms, residual sums, pooling and decoder (not spiking)",
    ]
    extra = {
        CUT_KEY: cut,
        "encoding": "each graph input is one block's neuron current, one sequence position a step",
    }
    return g, extra
