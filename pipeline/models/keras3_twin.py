"""The tf_keras twin of a Keras model: rebuilt layer by layer from its config, weights copied.

Why hand-written: tensorflow-model-optimization's quantize_model only takes tf_keras (Keras 2)
models and has no Keras 3 plan (model-optimization#1119), and a Keras 3 file does not load in
tf_keras. So each layer is re-created as its tf_keras class from the layer's own config (only
the arguments tf_keras's constructor names; initializers are dropped, the weights are copied),
wired as the config's graph says, nested models inlined.

Keras 3's hard_silu / hard_sigmoid activations and its operations between a tensor and a constant
(`x + 3.0`: MobileNetV3's hard sigmoid) become the layers of models/twin_layers.py.

While rebuilding, inference-inactive augmentation layers (RandomFlip, ...) become the identity,
and Rescaling / Normalization layers fed by the model input are folded out: their affine map
(x * scale + offset, per channel) is returned so the caller moves it into the preprocessing,
where it costs nothing and QAT never sees it (tfmot refuses Rescaling, model-optimization#647).
The caller proves the twin equal to the original (`max_abs_diff`) before using it.
"""
from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field

import numpy as np

from pipeline.models import twin_layers

log = logging.getLogger("deploy")

# Layers whose tf_keras class takes the same constructor arguments and the same weights.
TWINNABLE = {
    "InputLayer", "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense", "BatchNormalization", "ReLU",
    "Activation", "Softmax", "LeakyReLU", "ZeroPadding2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
    "AveragePooling2D", "MaxPooling2D", "Add", "Multiply", "Concatenate", "Reshape", "Permute", "Cropping2D",
    "Dropout", "SpatialDropout2D", "Flatten",
}
AUGMENTATION = {
    "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast", "RandomBrightness",
    "GaussianNoise", "GaussianDropout",
}
FOLDABLE = {"Rescaling", "Normalization"}
NESTED = {"Functional", "Sequential", "Model"}
TOLERANCE = 1e-5


class NoTwin(ValueError):
    """A layer with no tf_keras twin; the message names it (name and class)."""


@dataclass
class Twin:
    model: object  # tf_keras.Model
    scale: np.ndarray  # the folded input map, per channel: x_twin = x * scale + offset
    offset: np.ndarray
    removed: list[str] = field(default_factory=list)  # "name (Class)" of augmentation layers dropped
    folded: list[str] = field(default_factory=list)  # "name (Class)" of input preprocessing layers folded
    front: list = field(default_factory=list)  # the original's folded layers, to feed the proof


def needs_twin(model) -> bool:
    """A Keras 3 model always; a tf_keras model only when it has augmentation or input preprocessing layers."""
    from pipeline.models.loading import is_keras3_model

    return is_keras3_model(model) or any(type(layer).__name__ in AUGMENTATION | FOLDABLE for _, layer in _live_layers(model))


def build_twin(model) -> Twin:
    """Raises NoTwin naming the first layer that has no tf_keras twin."""
    from pipeline.models.loading import is_keras3_model
    from pipeline.tf_import import keras

    tf_keras = keras()
    channels = int(model.inputs[0].shape[-1])
    builder = _Builder(tf_keras, channels, is_keras3_model(model))
    inputs = tf_keras.Input(tuple(model.inputs[0].shape[1:]), name="input")
    builder.raw = inputs
    outputs = builder.model(model, [inputs])
    if len(outputs) != 1:
        raise NoTwin(f"model has {len(outputs)} outputs; an image classifier has one")
    twin = tf_keras.Model(inputs, outputs[0], name=model.name)
    return Twin(twin, builder.scale, builder.offset, builder.removed, builder.folded, builder.front)


class _Builder:
    def __init__(self, tf_keras, channels: int, keras3: bool):
        self.k = tf_keras
        self.keras3 = keras3  # activation names mean Keras 3's functions (hard_sigmoid differs)
        self.scale = np.ones(channels, np.float64)
        self.offset = np.zeros(channels, np.float64)
        self.removed: list[str] = []
        self.folded: list[str] = []
        self.front: list = []
        self.raw = None  # the twin's input tensor: preprocessing layers fed by it are folded

    def model(self, live, inputs: list) -> list:
        config = live.get_config()
        if type(live).__name__ == "Sequential":
            x = inputs[0]
            for layer in live.layers:  # Keras lists the InputLayer in the config, not in .layers
                x = self.layer(layer, [x])
            return [x]
        tensors = {}
        for (name, node, index), tensor in zip(_refs(config["input_layers"]), inputs):
            tensors[(name, node, index)] = tensor
        for entry in config["layers"]:
            if entry["class_name"] == "InputLayer":
                continue
            name = entry["config"]["name"] if "name" not in entry else entry["name"]
            for node_index, node in enumerate(entry["inbound_nodes"]):
                if entry.get("module", "").startswith("keras.src.ops."):  # a Keras 3 operation, not a layer
                    out = self.operation(name, entry["class_name"], _node_args(node, tensors))
                    tensors[(name, node_index, 0)] = out
                    continue
                layer = live.get_layer(name)
                args = [tensors[tuple(ref)] for ref in _node_refs(node)]
                out = self.layer(layer, args)
                for i, t in enumerate(out if isinstance(out, list) else [out]):
                    tensors[(layer.name, node_index, i)] = t
        return [tensors[tuple(ref)] for ref in _refs(config["output_layers"])]

    def layer(self, live, args: list):
        cls = type(live).__name__
        if cls in NESTED or hasattr(live, "layers") and cls not in TWINNABLE:
            out = self.model(live, args)
            return out[0] if len(out) == 1 else out
        if cls in AUGMENTATION:
            self.removed.append(f"'{live.name}' ({cls})")
            return args[0]
        if cls in FOLDABLE and len(args) == 1 and args[0] is self.raw:
            self._fold(live, cls)
            return args[0]
        if cls in FOLDABLE:  # inside the model: the same affine map, as layers QAT quantizes
            scale, offset = _affine_map(live, cls, int(args[0].shape[-1]))
            return twin_layers.affine(args[0], scale, offset, live.name)
        if cls not in TWINNABLE:
            raise NoTwin(f"layer '{live.name}' ({cls}) has no tf_keras twin")
        arguments = _arguments(getattr(self.k.layers, cls), live, cls)
        own = self.keras3 and twin_layers.ACTIVATIONS.get(arguments.get("activation"))
        if own and cls == "Activation":
            return twin_layers.classes()[own](name=live.name)(args[0])
        if own:  # e.g. Conv2D(activation="hard_silu"): the layer, then the activation as its own layer
            arguments["activation"] = "linear"
        twin = getattr(self.k.layers, cls)(**arguments)
        out = twin(args if cls in ("Add", "Multiply", "Concatenate") else args[0])
        weights = live.get_weights()
        try:
            twin.set_weights(weights)
        except ValueError as e:
            raise NoTwin(f"layer '{live.name}' ({cls}): weights do not fit its tf_keras twin ({e})") from e
        return twin_layers.classes()[own](name=f"{live.name}_{own.lower()}")(out) if own else out

    def operation(self, name: str, cls: str, args: list):
        """A Keras 3 operation (keras.src.ops) in the graph: two tensors -> the tf_keras layer of the
        same name; a tensor and a number -> twin_layers.Affine."""
        tensors = [a for a in args if not isinstance(a, (int, float))]
        if len(args) == 2 and len(tensors) == 2 and cls in ("Add", "Multiply", "Subtract"):
            return getattr(self.k.layers, cls)(name=name)(tensors)
        if len(args) == 2 and len(tensors) == 1:
            first = args[0] is tensors[0]
            c = float(args[1] if first else args[0])
            affine = {"Add": (1.0, c), "Subtract": (1.0, -c) if first else (-1.0, c), "Multiply": (c, 0.0),
                      "Divide": (1.0 / c, 0.0) if first and c else None, "TrueDivide": (1.0 / c, 0.0) if first and c else None}
            if affine.get(cls):
                return twin_layers.affine(tensors[0], *affine[cls], name)
        raise NoTwin(f"operation '{name}' ({cls} of {len(tensors)} tensor(s) and {len(args) - len(tensors)} number(s)) "
                     "has no tf_keras twin")

    def _fold(self, live, cls: str) -> None:
        scale, offset = _affine_map(live, cls, len(self.scale))
        if np.any(scale == 0):
            raise NoTwin(f"layer '{live.name}' ({cls}) multiplies the input by 0")
        self.scale, self.offset = self.scale * scale, self.offset * scale + offset
        self.folded.append(f"'{live.name}' ({cls})")
        self.front.append(live)


def _affine_map(live, cls: str, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """(scale, offset) per channel of a Rescaling or Normalization layer: y = x * scale + offset."""
    if cls == "Rescaling":
        scale = np.broadcast_to(np.asarray(live.scale, np.float64).reshape(-1), channels)
        offset = np.broadcast_to(np.asarray(live.offset, np.float64).reshape(-1), channels)
        return scale, offset
    # Normalization: (x - mean) / max(sqrt(variance), epsilon), as both Keras versions compute it
    if getattr(live, "invert", False):
        raise NoTwin(f"layer '{live.name}' ({cls}) with invert=True has no tf_keras twin")
    mean = np.broadcast_to(np.asarray(live.mean, np.float64).reshape(-1), channels)
    std = np.maximum(np.sqrt(np.broadcast_to(np.asarray(live.variance, np.float64).reshape(-1), channels)), 1e-7)
    return 1.0 / std, -mean / std


def _arguments(twin_class, live, cls: str) -> dict:
    """The live layer's config, restricted to what the tf_keras constructor names; weights are copied later."""
    config = live.get_config()
    accepted = set(inspect.signature(twin_class.__init__).parameters) | {"name", "trainable"}
    kept = {}
    for key, value in config.items():
        if key not in accepted or key.endswith(("_initializer", "_regularizer", "_constraint")):
            continue
        if key == "activation" and not isinstance(value, str):
            raise NoTwin(f"layer '{live.name}' ({cls}) has a custom activation; it has no tf_keras twin")
        if isinstance(value, dict):
            raise NoTwin(f"layer '{live.name}' ({cls}): argument '{key}' is a serialized object; it has no tf_keras twin")
        kept[key] = value
    return kept


def _node_args(node: dict, tensors: dict) -> list:
    """The positional arguments of one Keras 3 operation call: twin tensors and plain numbers, in order."""
    args = []
    for value in node.get("args", []):
        if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
            args.append(tensors[tuple(value["config"]["keras_history"])])
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            args.append(value)
        else:
            raise NoTwin(f"an operation argument of type {type(value).__name__} has no tf_keras twin")
    return args


def _refs(spec) -> list[list]:
    """Keras 3 writes one input/output as [name, node, index], several as a list of those."""
    return [spec] if spec and isinstance(spec[0], str) else list(spec)


def _node_refs(node) -> list[list]:
    """[name, node, index] of each input of one call, from a Keras 3 or a tf_keras inbound node."""
    if isinstance(node, dict):  # Keras 3: {"args": [tensor or [tensors]], "kwargs": {}}
        found = []

        def walk(value):
            if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
                found.append(value["config"]["keras_history"])
            elif isinstance(value, (list, tuple)):
                for v in value:
                    walk(v)

        walk(node.get("args", []))
        return found
    return [ref[:3] for ref in node]  # tf_keras: [[name, node, index, kwargs], ...]


def twin_input(twin: Twin, x: np.ndarray) -> np.ndarray:
    """The twin's input for the original's input x, computed by the original's own folded layers:
    the proof then compares the rebuilt graph, not float32 rounding of the fold (that is the
    preprocessing's, and the artifacts' agreement measures it)."""
    for layer in twin.front:
        x = np.asarray(layer(x))
    return x.astype(np.float32)


def max_abs_diff(original, twin: Twin, x: np.ndarray, batch_size: int = 64) -> float:
    """max |original(x) - twin(folded x)| over the images x (float, the original's input)."""
    a = _predict(original, x)
    b = _predict(twin.model, twin_input(twin, x))
    return float(np.abs(a - b).max())


def differing_layer(original, twin: Twin, x: np.ndarray) -> str:
    """'name (Class)' of the twin layer whose output differs most from the original layer's on the
    same input (the twin's own intermediate tensors), for the refusal message."""
    from pipeline.tf_import import keras

    tf_keras = keras()
    originals = {name: layer for name, layer in _live_layers(original)}
    candidates = [l for l in twin.model.layers if l.name in originals and l.weights]
    if not candidates:
        return "?"
    probe = tf_keras.Model(twin.model.inputs, [l.input for l in candidates] + [l.output for l in candidates])
    values = probe(twin_input(twin, x[:8]), training=False)
    n = len(candidates)
    worst, worst_diff = candidates[0], -1.0
    for i, layer in enumerate(candidates):
        expected = np.asarray(originals[layer.name](np.asarray(values[i]), training=False))
        diff = float(np.abs(expected - np.asarray(values[n + i])).max())
        if diff > worst_diff:
            worst, worst_diff = layer, diff
    return f"'{worst.name}' ({type(worst).__name__}, max difference {worst_diff:.3g})"


def _live_layers(model) -> list:
    """(name, layer) of every layer, nested models' layers included."""
    found = []
    for layer in model.layers:
        found.append((layer.name, layer))
        if hasattr(layer, "layers"):
            found += _live_layers(layer)
    return found


def _predict(model, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    return np.concatenate([np.asarray(model(x[i:i + batch_size], training=False)) for i in range(0, len(x), batch_size)])
