"""Rewrites that let tensorflow-model-optimization quantize layer patterns users write, each one
exact in float (the QAT stage checks the rewritten model against the original on images).

- A BatchNormalization that does not follow a linear Conv2D or DepthwiseConv2D: Conv-ReLU-BN as
  countless tutorials write it, or BN after pooling. tfmot's default registry only folds a BN that
  directly follows a linear convolution ("layer 'batch_normalization' (BatchNormalization) cannot
  be quantized"); a QuantizeConfig that only quantizes its output leaves TFLite's MUL and ADD in
  float (tried: the converter has no range for the product). In inference a BN is a per-channel
  affine map y = x * s + t (s = gamma / sqrt(var + eps), t = beta - mean * s), which a 1x1
  DepthwiseConv2D with kernel s and bias t computes exactly, and tfmot quantizes that (per-channel
  int8 weights, int32 bias): the int8 artifact is DEPTHWISE_CONV_2D where the BN was. Its statistics
  are frozen at their trained values and QAT fine-tunes the affine map like any weight, the
  "freeze and fold batch norm" step of the QAT literature (Jacob et al. 2018, Krishnamoorthi 2018).
  Only on 4-D inputs.
- A BatchNormalization on features (2-D, after a Dense), which tfmot does not fold either: folded
  into the Dense before it when that one is linear (Dense(use_bias=False) -> BN -> ReLU), else into
  the Dense it feeds (through Dropout: Dense -> ReLU -> BN -> Dropout -> Dense), exactly (a Dense has
  no padding that would see the BN's offset differently); the BN becomes a linear Activation. Any
  other BN on features is left to tfmot, which names it.

tfmot has no extension point for replacing one layer by another before quantize_model (its
transforms run on its own patterns), so this clones the model with Keras' clone_model.
"""
from __future__ import annotations

import numpy as np

FOLDED_BY_TFMOT = ("Conv2D", "DepthwiseConv2D")  # a BN right after one of these (linear) is tfmot's
PASS_THROUGH = ("Dropout",)  # identity in inference: a BN folds into the Dense behind them


def _producer(layer):
    """The layer whose output feeds `layer` (its first call), or None."""
    inbound = layer._inbound_nodes[0].inbound_layers if layer._inbound_nodes else None
    if isinstance(inbound, list):
        return inbound[0] if len(inbound) == 1 else None
    return inbound


def _consumer(layer):
    """The only layer `layer`'s output feeds, or None."""
    nodes = layer._outbound_nodes
    return nodes[0].outbound_layer if len(nodes) == 1 else None


def _linear(layer) -> bool:
    return layer.get_config().get("activation", "linear") == "linear"


def dense_folds(model) -> dict[str, tuple[str, str]]:
    """BatchNormalization on features -> ("before" | "after", the Dense it folds into)."""
    folds = {}
    for layer in model.layers:
        if type(layer).__name__ != "BatchNormalization" or len(layer.input_shape) != 2 or layer.axis not in ([1], [-1], 1, -1):
            continue
        producer = _producer(layer)
        if producer is not None and type(producer).__name__ == "Dense" and _linear(producer) and _consumer(producer) is layer:
            folds[layer.name] = ("before", producer.name)
            continue
        consumer = _consumer(layer)
        while consumer is not None and type(consumer).__name__ in PASS_THROUGH:
            consumer = _consumer(consumer)
        if consumer is not None and type(consumer).__name__ == "Dense" and _producer(consumer) is not None:
            folds[layer.name] = ("after", consumer.name)
    return folds


def batchnorms_to_rewrite(model) -> list[str]:
    """Names of the BatchNormalization layers tfmot cannot fold and a depthwise 1x1 can replace."""
    names = []
    for layer in model.layers:
        if type(layer).__name__ != "BatchNormalization" or len(layer.input_shape) != 4:
            continue
        producer = _producer(layer)
        folded = producer is not None and type(producer).__name__ in FOLDED_BY_TFMOT and \
            producer.get_config().get("activation", "linear") == "linear"
        if not folded and layer.axis in ([3], [-1], 3, -1):
            names.append(layer.name)
    return names


def rewrite_for_qat(model):
    """(the model to quantize, names of the BatchNormalization layers rewritten: as 1x1 depthwise
    convolutions, or folded into a Dense); the model itself when there is nothing to rewrite."""
    from pipeline.tf_import import keras

    ordered = batchnorms_to_rewrite(model)
    folds = dense_folds(model)
    names = set(ordered)
    if not names and not folds:
        return model, []
    k = keras()
    into = {dense: (side, model.get_layer(bn)) for bn, (side, dense) in folds.items()}

    def clone(layer):
        if layer.name in names:
            return k.layers.DepthwiseConv2D(1, use_bias=True, name=layer.name)
        if layer.name in folds:
            return k.layers.Activation("linear", name=layer.name)
        if layer.name in into:  # the BN's shift becomes (part of) its bias
            return layer.__class__.from_config({**layer.get_config(), "use_bias": True})
        return layer.__class__.from_config(layer.get_config())

    rewritten = k.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        target = rewritten.get_layer(layer.name)
        if layer.name in names:
            scale, shift = _bn_affine(layer)
            target.set_weights([scale.reshape(1, 1, -1, 1), shift])
        elif layer.name in into:
            target.set_weights(_folded_dense(layer, *into[layer.name]))
        elif layer.weights and layer.name not in folds:
            target.set_weights(layer.get_weights())
    return rewritten, [*ordered, *folds]


def _bn_affine(layer) -> tuple[np.ndarray, np.ndarray]:
    """The BN in inference as y = x * scale + shift, per channel."""
    gamma, beta, mean, variance = _bn_weights(layer)
    scale = gamma / np.sqrt(variance + layer.epsilon)
    return scale, beta - mean * scale


def _folded_dense(dense, side: str, bn) -> list[np.ndarray]:
    """The Dense's [kernel, bias] with the BN folded in: before it (its input is BN(x)) or after it."""
    kernel = dense.get_weights()[0]
    bias = dense.get_weights()[1] if dense.use_bias else np.zeros(kernel.shape[1], kernel.dtype)
    scale, shift = _bn_affine(bn)
    if side == "before":  # BN(x W + b) = x (W * scale) + (b * scale + shift)
        return [kernel * scale, bias * scale + shift]
    return [kernel * scale[:, None], shift @ kernel + bias]  # (x * scale + shift) W + b


def _bn_weights(layer) -> tuple[np.ndarray, ...]:
    """gamma, beta, moving mean, moving variance (ones / zeros where the layer has no scale or center)."""
    channels = layer.input_shape[-1]
    values = {w.name.split("/")[-1].split(":")[0]: w.numpy() for w in layer.weights}
    return (values.get("gamma", np.ones(channels, np.float32)), values.get("beta", np.zeros(channels, np.float32)),
            values["moving_mean"], values["moving_variance"])
