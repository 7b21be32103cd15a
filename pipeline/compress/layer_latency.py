"""Per-layer latency tables measured on a device (NetAdapt, Yang et al., ECCV 2018, section 3.3),
and the latency they predict for a filter pruning (pipeline/compress/filter_pruning.py).

Written here because no maintained library builds latency lookup tables for a Keras graph (NNCF
and tfmot estimate FLOPs; NetAdapt's and AMC's code is research code for PyTorch).

What is timed: every convolution, depthwise convolution and dense layer alone, as a one-layer
full-integer TFLite model (the int8 artifact's form, run by XNNPACK as the artifact is), at a grid
of channel counts, those the layer keeps when the groups it reads and writes keep GRID of their
channels. Alike layers (kind, input size, kernel, stride, channels: `LayerShape.key`) are timed
once. Beside them, two whole models: the model itself and every group pruned at HALF.

What is predicted: a pruning's latency is its layers' times, interpolated linearly between grid
counts (bilinearly where input and output both shrink), plus the rest of the model (additions,
pooling, concatenations, ShuffleNet's shuffles, the runtime's per-call cost) as a line in the
activation traffic (`ChannelGraph.traffic`) through the two whole models' leftovers. One-layer
times miss what XNNPACK gains by keeping a small tensor in cache between layers, which the line
absorbs at the two points it was fitted.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from pipeline.compress.filter_pruning import FIXED, ChannelGraph

GRID = (1.0, 0.75, 0.5, 0.3, 0.1)  # shares of a layer's channels it is timed at (the chooser removes up to 0.9)
HALF = 0.5  # every group's ratio in the second whole model the rest is fitted on


@dataclass(frozen=True)
class LayerShape:
    """What a one-layer model's time depends on."""

    kind: str  # "conv", "depthwise", "separable" or "dense" (ChannelGraph.cost's kinds)
    in_size: tuple[int, ...]  # the input's spatial size (h, w); () for a dense layer on a vector
    kernel: tuple[int, int]
    strides: tuple[int, int]
    padding: str
    cin: int
    cout: int

    @property
    def key(self) -> str:
        size = "x".join(map(str, self.in_size)) or "vector"
        return (f"{self.kind} {size} k{self.kernel[0]}x{self.kernel[1]} s{self.strides[0]}x{self.strides[1]} "
                f"{self.padding} {self.cin}->{self.cout}")


# The smallest one-layer model: what invoking any model costs, taken off every one-layer time (a
# layer inside a model does not pay it again; at 32x32 it was half of a MobileNet V2's summed layers).
CALL = LayerShape("conv", (1, 1), (1, 1), (1, 1), "valid", 1, 1)


@dataclass(frozen=True)
class LayerGrid:
    """The channel counts one layer is timed at (a depthwise layer's output is its input)."""

    layer: str
    base: LayerShape  # at full width
    cins: tuple[int, ...]
    couts: tuple[int, ...]

    def shapes(self) -> list[LayerShape]:
        if self.base.kind == "depthwise":
            return [replace(self.base, cin=c, cout=c) for c in self.cins]
        return [replace(self.base, cin=a, cout=b) for a in self.cins for b in self.couts]


def grids(graph: ChannelGraph) -> list[LayerGrid]:
    """One grid per conv, depthwise and dense layer of the graph, in graph order."""
    result = []
    for name, (kind, *_) in graph.cost.items():
        layer = graph.model.get_layer(name)
        config = layer.get_config()
        cin_atoms, cout_atoms = graph.inputs[name][0].ravel(), graph.labels[name].ravel()
        base = LayerShape(kind, tuple(int(d) for d in layer.input_shape[1:-1]), _pair(config.get("kernel_size", 1)),
                          _pair(config.get("strides", 1)), str(config.get("padding", "valid")), len(cin_atoms), len(cout_atoms))
        cins = _counts(graph, cin_atoms)
        result.append(LayerGrid(name, base, cins, cins if kind == "depthwise" else _counts(graph, cout_atoms)))
    return result


def _pair(value) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _counts(graph: ChannelGraph, atoms: np.ndarray) -> tuple[int, ...]:
    """The channel counts to time: the grid's shares of the channels, or all of them when none can go."""
    if all(graph.find(int(a)) == FIXED for a in atoms):
        return (len(atoms),)
    return tuple(sorted({max(1, round(share * len(atoms))) for share in GRID}))


def one_layer_model(shape: LayerShape):
    """A tf_keras model of the one layer `shape` describes (random weights: its time does not depend on them)."""
    from pipeline.tf_import import keras

    k = keras()
    x = k.Input((*shape.in_size, shape.cin))
    spatial = {"kernel_size": shape.kernel, "strides": shape.strides, "padding": shape.padding}
    layer = {"conv": lambda: k.layers.Conv2D(shape.cout, **spatial),
             "depthwise": lambda: k.layers.DepthwiseConv2D(**spatial),
             "separable": lambda: k.layers.SeparableConv2D(shape.cout, **spatial),
             "dense": lambda: k.layers.Dense(shape.cout)}[shape.kind]()
    return k.Model(x, layer(x))


def structure_key(graph: ChannelGraph) -> str:
    """The model's structure without its weights: whole-model timings are reused by it."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(graph.config, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class LatencyTable:
    """Measured times in ms: `layers` {layer: {"cins", "couts", "ms"}} (ms[i][j] at cins[i], couts[j];
    a depthwise layer's ms[i] at cins[i]) and the rest of the model, rest_ms + rest_ms_per_element * traffic."""

    layers: dict[str, dict]
    rest_ms: float
    rest_ms_per_element: float

    def layer_ms(self, layer: str, cin: int, cout: int) -> float:
        entry = self.layers[layer]
        cins, ms = entry["cins"], np.asarray(entry["ms"], float)
        if ms.ndim == 1:  # depthwise: one count
            return float(np.interp(cin, cins, ms))
        along_out = [np.interp(cout, entry["couts"], row) for row in ms]
        return float(np.interp(cin, cins, along_out))

    def layers_ms(self, graph: ChannelGraph, keep: np.ndarray | None = None) -> dict[str, float]:
        keep = np.ones(graph.atoms, bool) if keep is None else keep
        return {name: self.layer_ms(name, *graph.channels(name, keep)) for name in graph.cost}

    def predict(self, graph: ChannelGraph, keep: np.ndarray | None = None) -> float:
        """The model's latency pruned to `keep` (all atoms: unpruned), in ms."""
        return self.rest(graph.traffic(keep)) + sum(self.layers_ms(graph, keep).values())

    def rest(self, traffic: float) -> float:
        return self.rest_ms + self.rest_ms_per_element * traffic

    @classmethod
    def fit(cls, graph: ChannelGraph, entries: dict[str, float], whole: dict[str, float]) -> "LatencyTable":
        """The table from measured times: `entries` {LayerShape.key: ms} for every grid point and CALL,
        `whole` {"unpruned": ms, "half": ms} of the model and of it with every group at HALF."""
        layers = {}
        call = entries[CALL.key]
        for grid in grids(graph):
            shapes = grid.shapes()
            ms = [max(entries[s.key] - call, 0.0) for s in shapes]
            if grid.base.kind != "depthwise":
                ms = np.reshape(ms, (len(grid.cins), len(grid.couts))).tolist()
            layers[grid.layer] = {"cins": list(grid.cins), "couts": list(grid.couts), "ms": ms}
        table = cls(layers, 0.0, 0.0)
        half = half_keep(graph)
        points = [(graph.traffic(), whole["unpruned"] - sum(table.layers_ms(graph).values())),
                  (graph.traffic(half), whole["half"] - sum(table.layers_ms(graph, half).values()))]
        (t0, r0), (t1, r1) = points
        slope = (r0 - r1) / (t0 - t1) if t0 != t1 else 0.0
        if slope < 0:  # noise: the rest cannot cost less on more traffic; take it as constant
            slope, r0 = 0.0, (r0 + r1) / 2
        return cls(layers, r0 - slope * t0, slope)


def half_keep(graph: ChannelGraph) -> np.ndarray:
    return graph.keep_mask({g.name: HALF for g in graph.groups})
