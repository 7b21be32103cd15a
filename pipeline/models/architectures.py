"""Built-in image classifier architectures, as tf_keras (Keras 2) Functional models.

Every model here passes `tfmot.quantization.keras.quantize_model` unchanged (no custom
objects) and converts to a fully int8 TFLite model. Inputs are (H, W, 3) floats that the
caller has already normalised; outputs are a softmax over `num_classes`.

TensorFlow is imported inside functions only, so importing this module stays cheap.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Architecture:
    name: str
    description: str
    default_alpha: float
    alphas: tuple[float, ...] | None  # None = any positive float
    min_input_size: int


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture(
            name="mobilenet_v1",
            description="MobileNet V1 (depthwise separable convolutions), Keras Applications",
            default_alpha=1.0,
            alphas=(0.25, 0.5, 0.75, 1.0),
            min_input_size=32,
        ),
        Architecture(
            name="mobilenet_v2",
            description="MobileNet V2 (inverted residuals), Keras Applications",
            default_alpha=1.0,
            alphas=(0.35, 0.5, 0.75, 1.0, 1.3, 1.4),
            min_input_size=32,
        ),
        Architecture(
            name="shufflenet_v2",
            description="ShuffleNet V2 (channel split, shuffle by channel quarters), stage repeats 4/8/4",
            default_alpha=1.0,
            alphas=(0.5, 1.0, 1.5, 2.0),
            min_input_size=32,
        ),
        Architecture(
            name="squeezenet",
            description="SqueezeNet 1.1 with BatchNorm (fire modules); alpha scales squeeze/expand channels",
            default_alpha=1.0,
            alphas=None,
            min_input_size=32,
        ),
    )
}

# Output channels of stages 2, 3, 4 and of the final 1x1 conv, per width multiplier.
_SHUFFLENET_CHANNELS = {
    0.5: (48, 96, 192, 1024),
    1.0: (116, 232, 464, 1024),
    1.5: (176, 352, 704, 1024),
    2.0: (244, 488, 976, 2048),
}
_SHUFFLENET_REPEATS = (4, 8, 4)

# SqueezeNet 1.1 fire modules: (squeeze, expand 1x1, expand 3x3); None = max pooling.
_SQUEEZENET_LAYOUT = (
    (16, 64, 64), (16, 64, 64), None,
    (32, 128, 128), (32, 128, 128), None,
    (48, 192, 192), (48, 192, 192), (64, 256, 256), (64, 256, 256),
)


def build(name: str, input_size: int, num_classes: int, alpha: float | None = None) -> "tf_keras.Model":
    """Builds an untrained classifier; raises ValueError on a bad name, alpha or size."""
    arch = _check(name, input_size, num_classes, alpha)
    return _BUILDERS[arch.name]((input_size, input_size, 3), num_classes, resolved_alpha(name, alpha))


def resolved_alpha(name: str, alpha: float | None) -> float:
    """The width multiplier a built-in model is built with: `alpha`, or the architecture's default."""
    return ARCHITECTURES[name].default_alpha if alpha is None else float(alpha)


def _check(name, input_size, num_classes, alpha) -> Architecture:
    arch = ARCHITECTURES.get(name)
    if arch is None:
        raise ValueError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}")
    if alpha is not None:
        if arch.alphas is None and not alpha > 0:
            raise ValueError(f"alpha {alpha} is not allowed for {name}; use any positive number")
        if arch.alphas is not None and alpha not in arch.alphas:
            allowed = ", ".join(str(a) for a in arch.alphas)
            raise ValueError(f"alpha {alpha} is not allowed for {name}; choose one of {allowed}")
    if input_size < arch.min_input_size:
        raise ValueError(
            f"input_size {input_size} is too small for {name}; it must be at least {arch.min_input_size}"
        )
    if num_classes < 2:
        raise ValueError(f"num_classes {num_classes} is too small; a classifier needs at least 2")
    return arch


# --- Keras Applications ---------------------------------------------------------------


def _mobilenet_v1(shape, num_classes, alpha):
    from pipeline.tf_import import keras

    base = keras().applications.MobileNet(
        input_shape=shape, alpha=alpha, weights=None, classes=num_classes
    )
    return _renamed(base, "mobilenet_v1")


def _mobilenet_v2(shape, num_classes, alpha):
    from pipeline.tf_import import keras

    base = keras().applications.MobileNetV2(
        input_shape=shape, alpha=alpha, weights=None, classes=num_classes
    )
    return _renamed(base, "mobilenet_v2")


def _renamed(model, name):
    # A new Functional model over the same graph: same layers, our name.
    from pipeline.tf_import import keras

    return keras().Model(model.inputs, model.outputs, name=name)


# --- ShuffleNet V2 --------------------------------------------------------------------


def _shufflenet_v2(shape, num_classes, alpha):
    from pipeline.tf_import import keras

    layers = keras().layers
    *stage_channels, last_channels = _SHUFFLENET_CHANNELS[alpha]
    inputs = layers.Input(shape)
    x = _conv_bn(inputs, 24, 3, strides=2, name="stem")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for stage, (channels, repeats) in enumerate(zip(stage_channels, _SHUFFLENET_REPEATS), 2):
        x = _shuffle_down_unit(x, channels, name=f"stage{stage}_unit1")
        for unit in range(2, repeats + 1):
            x = _shuffle_unit(x, name=f"stage{stage}_unit{unit}")
    x = _conv_bn(x, last_channels, 1, name="conv5")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras().Model(inputs, outputs, name="shufflenet_v2")


def _conv_bn(x, filters, kernel, strides=1, relu=True, name="", padding="same"):
    from pipeline.tf_import import keras

    layers = keras().layers
    x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _dw_bn(x, strides, name):
    from pipeline.tf_import import keras

    layers = keras().layers
    x = layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False, name=f"{name}_dw")(x)
    return layers.BatchNormalization(name=f"{name}_dw_bn")(x)


def _branch(x, channels, strides, name):
    """1x1 conv, 3x3 depthwise, 1x1 conv: the main branch of every unit."""
    x = _conv_bn(x, channels, 1, name=f"{name}_expand")
    x = _dw_bn(x, strides, name=name)
    return _conv_bn(x, channels, 1, name=f"{name}_project")


def _shuffle_unit(x, name):
    """Stride-1 unit. The input's channel quarters are [q0, q1, q2, q3]: the branch takes the
    middle half (q1, q2), and the output is [q3, q0, branch].

    That order is the channel shuffle, done as a block permutation: the next unit's branch sees half
    of this unit's branch output and the quarter kept longest (q0), like the paper's two-group
    shuffle, but each kept quarter waits at most two units. A contiguous slice and a concatenation
    are cheap copies; the paper's interleave (an int8 TRANSPOSE in LiteRT) took 29 % of the model's
    time at 224x224 (docs/compression.md). The branch comes last in the concatenation because
    tensorflow-model-optimization moves it there anyway (model-optimization#1061).
    """
    from pipeline.tf_import import keras

    q3 = _channel_slice(x, 4, 3, 4, name=f"{name}_keep_front")
    q0 = _channel_slice(x, 4, 0, 1, name=f"{name}_keep_back")
    branch = _branch(_channel_slice(x, 4, 1, 3, name=f"{name}_split"), keras().backend.int_shape(x)[-1] // 2, 1, name)
    return keras().layers.Concatenate(name=f"{name}_concat")([q3, q0, branch])


def _shuffle_down_unit(x, channels, name):
    """Stride-2 unit: both branches see the whole input and each gives half the channels.

    No shuffle after it: the block shuffle of the units after it mixes the two halves (the next
    unit's branch takes a quarter of each, the one after it the shortcut's other quarter).
    """
    from pipeline.tf_import import keras

    shortcut = _dw_bn(x, 2, name=f"{name}_short")
    shortcut = _conv_bn(shortcut, channels // 2, 1, name=f"{name}_short_project")
    branch = _branch(x, channels // 2, 2, name)
    return keras().layers.Concatenate(name=f"{name}_concat")([shortcut, branch])


def _channel_slice(x, parts, start, stop, name):
    """Channels [start * C/parts, stop * C/parts).

    Written with Reshape and Cropping2D because Lambda, tf.split and slicing break
    quantize_model (see FIELD-NOTES): the channels fold into (parts, C/parts) and Cropping2D
    keeps parts start..stop-1.
    """
    from pipeline.tf_import import keras

    layers = keras().layers
    h, w, c = keras().backend.int_shape(x)[1:]
    if c % parts:
        raise ValueError(f"{name}: {c} channels do not split into {parts} equal parts")
    x = layers.Reshape((h * w, parts, c // parts), name=f"{name}_fold")(x)
    x = layers.Cropping2D(((0, 0), (start, parts - stop)), name=f"{name}_crop")(x)
    return layers.Reshape((h, w, (stop - start) * (c // parts)), name=f"{name}_unfold")(x)


# --- SqueezeNet 1.1 -------------------------------------------------------------------


def _squeezenet(shape, num_classes, alpha):
    """SqueezeNet 1.1's topology, with BatchNorm after each convolution and a linear classifier.

    The original (no BatchNorm, ReLU on conv10) needs its careful init and SGD schedule: trained
    from scratch with Adam on the demo digits it stays at chance (loss 2.3026 for 30 epochs),
    this version reaches 97.5 % in 20. BatchNorm folds into the convolutions at conversion.
    """
    from pipeline.tf_import import keras

    layers = keras().layers
    inputs = layers.Input(shape)
    x = _conv_bn(inputs, 64, 3, strides=2, name="conv1", padding="valid")
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    fire, pool = 2, 2
    for spec in _SQUEEZENET_LAYOUT:
        if spec is None:
            x = layers.MaxPooling2D(3, strides=2, name=f"pool{pool}")(x)
            pool += 1
            continue
        squeeze, e1, e3 = (_scaled(c, alpha) for c in spec)
        x = _fire(x, squeeze, e1, e3, name=f"fire{fire}")
        fire += 1
    # The original's Dropout(0.5) is left out: it only hurts the tiny data sets used here.
    x = layers.Conv2D(num_classes, 1, name="conv10")(x)
    x = layers.GlobalAveragePooling2D(name="pool10")(x)
    outputs = layers.Softmax(name="predictions")(x)
    return keras().Model(inputs, outputs, name="squeezenet")


def _scaled(channels, alpha):
    return max(8, int(round(channels * alpha)))


def _fire(x, squeeze, expand1, expand3, name):
    from pipeline.tf_import import keras

    x = _conv_bn(x, squeeze, 1, name=f"{name}_squeeze")
    left = _conv_bn(x, expand1, 1, name=f"{name}_expand1x1")
    right = _conv_bn(x, expand3, 3, name=f"{name}_expand3x3")
    return keras().layers.Concatenate(name=f"{name}_concat")([left, right])


_BUILDERS = {
    "mobilenet_v1": _mobilenet_v1,
    "mobilenet_v2": _mobilenet_v2,
    "shufflenet_v2": _shufflenet_v2,
    "squeezenet": _squeezenet,
}


# --- Cost -----------------------------------------------------------------------------


def count_macs(model) -> int:
    """Multiply-accumulates for one image through the conv and dense layers (biases not counted).

    Computed from each layer's output shape and kernel shape, so the model must be built.
    Nested models are walked; QAT wrappers are looked through.
    """
    return sum(_layer_macs(layer) for layer in _leaf_layers(model))


def _leaf_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers"):
            yield from _leaf_layers(layer)
        else:
            yield layer


def _layer_macs(layer) -> int:
    from pipeline.tf_import import keras

    layers = keras().layers
    inner = getattr(layer, "layer", layer)  # QuantizeWrapper keeps the real layer in .layer
    # Depthwise, separable and transposed convs subclass Conv2D: test them first.
    if isinstance(inner, layers.DepthwiseConv2D):
        kh, kw = inner.depthwise_kernel.shape[:2]
        return _outputs(layer) * kh * kw
    if isinstance(inner, layers.SeparableConv2D):
        kh, kw, cin, multiplier = inner.depthwise_kernel.shape
        cout = inner.pointwise_kernel.shape[-1]
        positions = _outputs(layer) // cout
        return positions * cin * multiplier * (kh * kw + cout)
    if isinstance(inner, layers.Conv2DTranspose):
        # Every input position is multiplied by the whole kernel.
        return math.prod(layer.input_shape[1:]) * math.prod(inner.kernel.shape[:-1])
    if isinstance(inner, (layers.Conv2D, layers.Dense)):
        # One output value costs kh*kw*cin/groups (conv) or units_in (dense) MACs.
        return _outputs(layer) * math.prod(inner.kernel.shape[:-1])
    return 0


def _outputs(layer) -> int:
    """Number of output values for one image."""
    return math.prod(layer.output_shape[1:])
