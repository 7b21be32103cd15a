"""Structured L1-norm filter pruning of tf_keras functional models (Li et al., ICLR 2017).

Hand-written because no maintained library does filter pruning of Keras graphs: tfmot has none
(model-optimization#732, open since 2021), NNCF dropped its TensorFlow backend (3.0) and
keras-surgeon breaks on TF >= 2.4.

How it works. Every channel of every tensor is an *atom*: a convolution or dense layer makes new
atoms, pass-through layers (BatchNorm, activations, pooling, padding, DepthwiseConv2D) carry their
input's, Concatenate joins lists, Reshape/Permute/Cropping2D move them around (ShuffleNet's split
and shuffle). Atoms that must be kept or removed together are joined in a union-find: Add joins its
inputs channel by channel (MobileNet V2's residuals), a fold into (parts, C/parts) joins the parts
position by position (ShuffleNet's split and shuffle stay even), a channel-mixing layer (softmax)
joins all its channels, and the model's inputs and outputs are fixed. A joined set of atoms is a
*unit* (one filter, or one filter per producer that must go together); the producers whose units
touch form a *group*, the thing the sensitivity analysis prunes at a ratio. A unit's score is the
sum of its producers' filter L1 norms; pruning a group at ratio r removes its round(r * n) lowest
units (keeping at least one).

The pruned model is rebuilt from the functional config with smaller `filters`/`units`/Reshape
shapes and the kept weights copied: a physically smaller dense model, not a mask. `mask_weights`
gives the same outputs cheaply, by zeroing the removed channels' input weights in their consumers
(every consumer of a removed atom is a conv or dense layer, linear in it): the sensitivity
analysis uses it to avoid rebuilding a model per measurement.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pipeline.errors import UserInputError

# Layers that keep each channel apart and carry their input's atoms unchanged.
PASS_THROUGH = {
    "InputLayer", "BatchNormalization", "ReLU", "Activation", "LeakyReLU", "ELU", "ThresholdedReLU", "Dropout",
    "SpatialDropout2D", "GaussianNoise", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
    "GlobalMaxPooling2D", "ZeroPadding2D", "DepthwiseConv2D",
}
CHANNEL_MIXING = {"Softmax"}  # every channel depends on every other: all kept or none
ELEMENTWISE_MERGE = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"}
PRODUCERS = {"Conv2D", "SeparableConv2D", "Dense"}
RESHAPING = {"Reshape", "Flatten", "Permute", "Cropping2D", "Concatenate"}
SUPPORTED = PASS_THROUGH | CHANNEL_MIXING | ELEMENTWISE_MERGE | PRODUCERS | RESHAPING

FIXED = 0  # the atom every unpruneable atom is joined with


@dataclass
class Group:
    """Producers whose filters are pruned together, and their units (atom ids) with L1 scores."""

    name: str
    producers: list[str]
    units: list[np.ndarray]
    scores: np.ndarray

    def removed(self, ratio: float) -> int:
        return min(int(round(ratio * len(self.units))), len(self.units) - 1)


@dataclass
class ChannelGraph:
    model: object  # the tf_keras model read
    config: dict
    labels: dict[str, np.ndarray]  # layer name -> atom ids of its output (channel axes only)
    inputs: dict[str, list[np.ndarray]]  # layer name -> atom ids of each input
    parent: np.ndarray  # union-find over atoms
    groups: list[Group] = field(default_factory=list)
    # layer -> (kind, output positions, kernel area, input positions), for the conv and dense layers
    cost: dict[str, tuple[str, int, int, int]] = field(default_factory=dict)

    def find(self, a: int) -> int:
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:
            self.parent[a], a = root, self.parent[a]
        return root

    @property
    def atoms(self) -> int:
        return len(self.parent)

    # ---- what a pruning keeps --------------------------------------------------------------

    def keep_mask(self, ratios: dict[str, float]) -> np.ndarray:
        """Per atom: kept? for `ratios` (group name -> share of its units removed)."""
        keep = np.ones(self.atoms, bool)
        for group in self.groups:
            count = group.removed(ratios.get(group.name, 0.0))
            for unit in np.argsort(group.scores, kind="stable")[:count]:
                keep[group.units[unit]] = False
        return keep

    def macs(self, keep: np.ndarray | None = None) -> int:
        """MACs of the model pruned to `keep` (all atoms: the model as it is); the same
        count as architectures.count_macs, from channel counts (pruning changes no spatial size)."""
        keep = np.ones(self.atoms, bool) if keep is None else keep
        total = 0
        for name, (kind, positions, area, _) in self.cost.items():
            cin, cout = self.channels(name, keep)
            total += {"conv": positions * area * cin * cout, "dense": positions * cin * cout,
                      "depthwise": positions * area * cin, "separable": positions * cin * (area + cout)}[kind]
        return total

    def traffic(self, keep: np.ndarray | None = None) -> int:
        """Activation elements the conv and dense layers read and write, pruned to `keep`: what
        memory-bound layers (depthwise convolutions, 1x1 convolutions on large maps) spend their
        time on, and MACs do not count (Ma et al. 2018, ShuffleNet V2, "memory access cost")."""
        keep = np.ones(self.atoms, bool) if keep is None else keep
        total = 0
        for name, (_, positions, _, in_positions) in self.cost.items():
            cin, cout = self.channels(name, keep)
            total += in_positions * cin + positions * cout
        return total

    def channels(self, layer: str, keep: np.ndarray) -> tuple[int, int]:
        return int(keep[self.inputs[layer][0]].sum()), int(keep[self.labels[layer]].sum())


# ---- reading the graph ---------------------------------------------------------------------


def _unsupported(layer_name: str, class_name: str, why: str) -> UserInputError:
    return UserInputError(f"layer '{layer_name}' ({class_name}) cannot be filter-pruned: {why}; supported layers: "
                          f"{', '.join(sorted(SUPPORTED))} (use --prune none for this model)")


def read_graph(model) -> ChannelGraph:
    """The channel atoms, units and groups of a tf_keras functional model."""
    config = model.get_config()
    if "layers" not in config or "input_layers" not in config:
        raise UserInputError(f"model '{model.name}' ({type(model).__name__}) cannot be filter-pruned: only functional models are")
    parent: list[int] = [FIXED]

    def new_atoms(count: int) -> np.ndarray:
        start = len(parent)
        parent.extend(range(start, start + count))
        return np.arange(start, start + count)

    graph = ChannelGraph(model, config, {}, {}, np.zeros(0, np.int64))
    joins: list[tuple[int, int]] = []
    by_name = {spec["name"]: spec for spec in config["layers"]}
    for spec in _topological(config["layers"]):
        name, cls = spec["name"], spec["class_name"]
        layer = model.get_layer(name)
        if cls not in SUPPORTED:
            raise _unsupported(name, cls, "no rule for how it moves channels")
        if len(spec["inbound_nodes"]) > 1:
            raise _unsupported(name, cls, "it is used more than once (shared layer)")
        sources = [entry[0] for entry in (spec["inbound_nodes"][0] if spec["inbound_nodes"] else [])]
        for entry in (spec["inbound_nodes"][0] if spec["inbound_nodes"] else []):
            if entry[2] != 0 or entry[0] not in by_name:
                raise _unsupported(name, cls, "its input is not a single-output layer of this model")
        inputs = [graph.labels[s] for s in sources]
        graph.inputs[name] = inputs
        graph.labels[name] = _output_atoms(layer, cls, spec["config"], inputs, new_atoms, joins)
        _record_cost(graph, layer, cls, inputs)
    graph.parent = np.array(parent)
    for a, b in joins:
        _union(graph, a, b)
    for entry in config["input_layers"] + config["output_layers"]:
        for atom in graph.labels[entry[0]].ravel():
            _union(graph, atom, FIXED)
    graph.groups = _groups(graph)
    return graph


def _topological(layers: list[dict]) -> list[dict]:
    done, ordered, pending = set(), [], list(layers)
    while pending:
        ready = [s for s in pending if all(e[0] in done for node in s["inbound_nodes"] for e in node)]
        if not ready:
            raise UserInputError("model graph has a cycle or a nested model; it cannot be filter-pruned")
        for s in ready:
            done.add(s["name"])
            ordered.append(s)
        pending = [s for s in pending if s["name"] not in done]
    return ordered


def _union(graph: ChannelGraph, a: int, b: int) -> None:
    ra, rb = graph.find(int(a)), graph.find(int(b))
    if ra == rb:
        return
    if rb == FIXED:  # FIXED stays the root of everything joined with it
        ra, rb = rb, ra
    graph.parent[rb] = ra


def _output_atoms(layer, cls: str, cfg: dict, inputs: list[np.ndarray], new_atoms, joins) -> np.ndarray:
    name = layer.name
    if cls == "InputLayer":
        shape = layer.output_shape[0] if isinstance(layer.output_shape, list) else layer.output_shape
        return new_atoms(int(shape[-1]))
    if cls in ELEMENTWISE_MERGE:
        first = inputs[0]
        for other in inputs[1:]:
            if other.shape != first.shape:
                raise _unsupported(name, cls, "its inputs' channels differ (broadcasting)")
            joins.extend(zip(first.ravel(), other.ravel()))
        return first
    if len(inputs) != 1:
        if cls != "Concatenate":
            raise _unsupported(name, cls, f"it has {len(inputs)} inputs")
    x = inputs[0]
    if cls in ("Conv2D", "SeparableConv2D", "Dense", "BatchNormalization", "Concatenate") or cls in CHANNEL_MIXING:
        axis = cfg.get("axis", -1)
        axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
        rank = len(layer.output_shape)
        if axis not in (-1, rank - 1):
            raise _unsupported(name, cls, f"it works on axis {axis}, not the channels")
        if any(i.ndim != 1 for i in inputs):
            raise _unsupported(name, cls, "its input's channels were reshaped")
    if cls == "Conv2D" and cfg.get("groups", 1) != 1:
        raise _unsupported(name, cls, "grouped convolution")
    if cls in ("DepthwiseConv2D", "SeparableConv2D") and cfg.get("depth_multiplier", 1) != 1:
        raise _unsupported(name, cls, "depth_multiplier is not 1")
    if cls in PRODUCERS:
        return new_atoms(int(layer.output_shape[-1]))
    if cls in CHANNEL_MIXING:
        joins.extend((x[0], a) for a in x[1:])
        return x
    if cls in PASS_THROUGH:
        if x.ndim != 1 and cls not in ("Activation", "ReLU", "LeakyReLU", "ELU", "Dropout", "GaussianNoise"):
            raise _unsupported(name, cls, "its input's channels were reshaped")
        if cls == "Activation" and cfg.get("activation") == "softmax":
            joins.extend((x.ravel()[0], a) for a in x.ravel()[1:])
        return x
    if cls == "Concatenate":
        return np.concatenate(inputs)
    in_shape, out_shape = tuple(layer.input_shape[1:]), tuple(layer.output_shape[1:])
    if cls in ("Reshape", "Flatten"):
        return _reshaped(name, cls, x, in_shape, out_shape, joins)
    if cls == "Permute":
        return _permuted(name, cls, x, len(in_shape), [d - 1 for d in cfg["dims"]])
    return _cropped(name, cls, x, in_shape, cfg["cropping"])  # Cropping2D


def _reshaped(name, cls, x, in_shape, out_shape, joins) -> np.ndarray:
    """The atoms move to the smallest trailing block of the new shape that holds them, other axes
    unchanged in size; a block of 2+ axes joins its atoms along all but the last axis, so that a
    pruned tensor stays rectangular (ShuffleNet's fold into quarters keeps them even)."""
    lead = math.prod(in_shape[: len(in_shape) - x.ndim])
    if tuple(in_shape[len(in_shape) - x.ndim:]) != x.shape:
        raise _unsupported(name, cls, "its input's channels are not its trailing axes")
    for m in range(1, len(out_shape) + 1):
        if math.prod(out_shape[-m:]) == x.size and math.prod(out_shape[:-m]) == lead:
            moved = x.reshape(out_shape[-m:])
            for column in moved.reshape(-1, moved.shape[-1]).T:
                joins.extend((column[0], a) for a in column[1:])
            return moved
    raise _unsupported(name, cls, f"it mixes channels with other axes ({in_shape} -> {out_shape})")


def _permuted(name, cls, x, rank: int, dims: list[int]) -> np.ndarray:
    first = rank - x.ndim  # the tensor axis where the channel axes start
    if sorted(dims[first:]) != list(range(first, rank)):
        raise _unsupported(name, cls, f"it moves channel axes among the others (dims {[d + 1 for d in dims]})")
    return x.transpose([d - first for d in dims[first:]])


def _cropped(name, cls, x, in_shape, cropping) -> np.ndarray:
    first = len(in_shape) - x.ndim
    index = []
    for axis in range(first, len(in_shape)):
        crop = cropping[axis] if axis < len(cropping) else (0, 0)
        index.append(slice(crop[0], in_shape[axis] - crop[1]))
    return x[tuple(index)]


def _record_cost(graph: ChannelGraph, layer, cls: str, inputs: list[np.ndarray]) -> None:
    if cls not in ("Conv2D", "Dense", "DepthwiseConv2D", "SeparableConv2D"):
        return
    positions = math.prod(layer.output_shape[1:-1])
    in_positions = math.prod(layer.input_shape[1:-1])
    kernel = layer.depthwise_kernel if cls in ("DepthwiseConv2D", "SeparableConv2D") else layer.kernel
    area = math.prod(kernel.shape[:2]) if cls != "Dense" else 1
    kind = {"Conv2D": "conv", "Dense": "dense", "DepthwiseConv2D": "depthwise", "SeparableConv2D": "separable"}[cls]
    graph.cost[layer.name] = (kind, positions, area, in_positions)


def _filter_l1(layer, cls: str) -> np.ndarray:
    kernel = layer.pointwise_kernel if cls == "SeparableConv2D" else layer.kernel
    w = np.abs(np.asarray(kernel))
    return w.reshape(-1, w.shape[-1]).sum(0)


def _groups(graph: ChannelGraph) -> list[Group]:
    """Units (joined atoms, not fixed) and the groups of producers they tie together."""
    roots = np.array([graph.find(a) for a in range(graph.atoms)])
    score = np.zeros(graph.atoms)
    owner: dict[int, str] = {}  # atom -> producer
    producers = []
    for spec in graph.config["layers"]:
        if spec["class_name"] in PRODUCERS:
            name = spec["name"]
            atoms = graph.labels[name]
            score[atoms] = _filter_l1(graph.model.get_layer(name), spec["class_name"])
            owner.update((int(a), name) for a in atoms)
            producers.append(name)
    # Producers joined through a unit form one group (a second union-find, over producers).
    group_of = {p: p for p in producers}

    def find(p):
        while group_of[p] != p:
            p = group_of[p]
        return p

    members: dict[int, list[int]] = {}
    for atom, root in enumerate(roots):
        if root != FIXED and atom != FIXED:
            members.setdefault(int(root), []).append(atom)
    for atoms in members.values():
        names = [owner[a] for a in atoms if a in owner]
        for other in names[1:]:
            a, b = find(names[0]), find(other)
            if a != b:
                group_of[b] = a
    groups: dict[str, list[np.ndarray]] = {}
    for atoms in members.values():
        names = [owner[a] for a in atoms if a in owner]
        if names:
            groups.setdefault(find(names[0]), []).append(np.array(atoms))
    ordered = [p for p in producers if p in groups]  # groups named and listed in graph order
    result = []
    for head in ordered:
        units = sorted(groups[head], key=lambda u: int(u.min()))
        result.append(Group(head, sorted({owner[int(a)] for u in units for a in u if int(a) in owner}, key=producers.index),
                            units, np.array([score[u].sum() for u in units])))
    return result


# ---- applying a pruning ------------------------------------------------------------------


def _kept(keep: np.ndarray, atoms: np.ndarray) -> np.ndarray:
    """Positions of the kept atoms in a 1-D atom list."""
    return np.flatnonzero(keep[atoms])


def _pruned_shape(name: str, keep: np.ndarray, atoms: np.ndarray) -> tuple[int, ...]:
    """The shape of a channel block after pruning; it must stay rectangular."""
    mask = keep[atoms]
    shape = []
    for axis in range(mask.ndim):
        others = tuple(i for i in range(mask.ndim) if i != axis)
        shape.append(int(mask.any(axis=others).sum()) if others else int(mask.sum()))
    if math.prod(shape) != int(mask.sum()):
        raise ValueError(f"pruning leaves layer '{name}''s channels ragged ({mask.shape} -> {int(mask.sum())} kept)")
    return tuple(shape)


def prune(graph: ChannelGraph, keep: np.ndarray):
    """A new, physically smaller model keeping the atoms in `keep`, with the kept weights copied."""
    from pipeline.tf_import import keras

    config = _pruned_config(graph, keep)
    pruned = keras().Model.from_config(config)
    for spec in graph.config["layers"]:
        name, cls = spec["name"], spec["class_name"]
        weights = graph.model.get_layer(name).get_weights()
        if not weights:
            continue
        pruned.get_layer(name).set_weights(_sliced(graph, keep, name, cls, weights))
    for spec in graph.config["layers"]:
        name = spec["name"]
        labels = graph.labels[name]
        shape = pruned.get_layer(name).output_shape
        shape = shape[0] if isinstance(shape, list) else shape  # InputLayer's is a list
        got = tuple(shape[-labels.ndim:])
        if got != _pruned_shape(name, keep, labels):
            raise ValueError(f"pruned layer '{name}' has shape {got}, expected {_pruned_shape(name, keep, labels)}")
    return pruned


def _pruned_config(graph: ChannelGraph, keep: np.ndarray) -> dict:
    import copy

    config = copy.deepcopy(graph.config)
    for spec in config["layers"]:
        name, cls, cfg = spec["name"], spec["class_name"], spec["config"]
        out = graph.labels[name]
        if cls in ("Conv2D", "SeparableConv2D"):
            cfg["filters"] = int(keep[out].sum())
        elif cls == "Dense":
            cfg["units"] = int(keep[out].sum())
        elif cls == "Reshape":
            full = graph.model.get_layer(name).output_shape[1:]
            cfg["target_shape"] = [*full[: len(full) - out.ndim], *_pruned_shape(name, keep, out)]
        elif cls == "InputLayer" and not keep[out].all():
            raise ValueError("pruning would remove input channels")
    return config


def _sliced(graph: ChannelGraph, keep: np.ndarray, name: str, cls: str, weights: list[np.ndarray]) -> list[np.ndarray]:
    inputs = graph.inputs[name]
    kin = _kept(keep, inputs[0]) if inputs and inputs[0].ndim == 1 else None
    kout = _kept(keep, graph.labels[name]) if graph.labels[name].ndim == 1 else None
    if cls in ("Conv2D", "Dense"):
        kernel = weights[0][..., kin, :][..., kout]
        return [kernel, *(b[kout] for b in weights[1:])]
    if cls == "SeparableConv2D":
        depthwise, pointwise, *bias = weights
        return [depthwise[:, :, kin, :], pointwise[:, :, kin, :][..., kout], *(b[kout] for b in bias)]
    if cls == "DepthwiseConv2D":
        return [weights[0][:, :, kin, :], *(b[kin] for b in weights[1:])]
    if cls == "BatchNormalization":
        return [w[kout] for w in weights]
    raise _unsupported(name, cls, "it has weights and no rule to slice them")


def mask_weights(graph: ChannelGraph, keep: np.ndarray, model=None) -> list[tuple[object, np.ndarray]]:
    """Zero, in `model` (default: the graph's own), the input weights that read removed atoms;
    the model then computes what the pruned one would. Returns (variable, original value) to restore."""
    model = graph.model if model is None else model
    saved = []
    for name, inputs in graph.inputs.items():
        layer = model.get_layer(name)
        cls = type(layer).__name__
        if cls not in PRODUCERS:
            continue
        removed = np.flatnonzero(~keep[inputs[0]])
        if not len(removed):
            continue
        variable = layer.pointwise_kernel if cls == "SeparableConv2D" else layer.kernel
        original = variable.numpy()
        masked = original.copy()
        masked[..., removed, :] = 0
        variable.assign(masked)
        saved.append((variable, original))
    return saved


def restore(saved: list[tuple[object, np.ndarray]]) -> None:
    for variable, original in saved:
        variable.assign(original)
