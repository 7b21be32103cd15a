"""Magnitude sparsity with tensorflow-model-optimization (tfmot), shaped for XNNPACK's sparse inference.

prune_low_magnitude zeroes the smallest weights during fine-tuning, following a PolynomialDecay
schedule from 0 to the target sparsity; strip_pruning leaves a plain model whose zeros stay
zeros; pruning-preserving QAT (pipeline.compress.common) keeps them through int8.

Which weights: scope "pointwise" prunes only 1x1 Conv2D kernels, what tfmot's
PruneForLatencyOnXNNPack allows (the only weights XNNPACK's sparse kernels read; depthwise
kernels are 3x3 per channel and hurt most when pruned); scope "all" uses tfmot's own registry
(every Conv2D and Dense kernel; DepthwiseConv2D and BatchNormalization have no prunable weights
in tfmot). XNNPACK also needs 3x3 stride-2 convolutions padded 1 on each side (Keras "same" at
stride 2 pads 0 before and 1 after): `symmetric_stride2_padding` rewrites them.
"""
from __future__ import annotations

import numpy as np

from pipeline.compress.common import copy_model

SCOPES = ("pointwise", "all")
SCHEDULE_TICKS = 10  # sparsity steps between 0 and the target
PRUNED_SHARE = 2 / 3  # of the fine-tuning steps spent raising sparsity; the rest recover accuracy
# The schedule counts optimizer steps, so a small data set needs more epochs: MobileNet V2 (alpha 0.5)
# on the demo digits, 80 % sparsity, kept 19 % held-out top-1 after 105 steps at 5e-4, 61 % after
# 105 at 2e-3, 94 % after 315 and 95 % (dense: 96 %) after 630 at 2e-3 (docs/compression-tfmot.md).
MIN_STEPS = 600  # pipeline.compress.finetune.epochs_for


def schedule(target: float, total_steps: int):
    """PolynomialDecay from 0 to `target`, reaching it after PRUNED_SHARE of the steps on a step
    where pruning runs (tfmot only updates masks every `frequency` steps up to `end_step`)."""
    from pipeline.tf_import import tfmot

    if not 0 < target < 1:
        raise ValueError(f"sparsity must be between 0 and 1 (got {target})")
    end = max(1, int(total_steps * PRUNED_SHARE))
    ticks = min(SCHEDULE_TICKS, end)
    frequency = end // ticks
    return tfmot().sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=target, begin_step=0, end_step=frequency * ticks, frequency=frequency)


def _pointwise_policy():
    """tfmot's PruneForLatencyOnXNNPack choice of layers (1x1 Conv2D), without its refusal of a model
    XNNPACK could not run sparse: that check is reported (`xnnpack_policy_check`), not enforced."""
    from pipeline.tf_import import tfmot

    class PointwiseOnly(tfmot().sparsity.keras.PruneForLatencyOnXNNPack):
        def ensure_model_supports_pruning(self, model):
            return None

    return PointwiseOnly()


def prune(model, target: float, total_steps: int, scope: str = "pointwise"):
    """(model wrapped for pruning, callbacks to pass to fit)."""
    from pipeline.tf_import import tfmot

    if scope not in SCOPES:
        raise ValueError(f"unknown pruning scope {scope!r} (choose from {', '.join(SCOPES)})")
    t = tfmot()
    policy = _pointwise_policy() if scope == "pointwise" else None
    wrapped = t.sparsity.keras.prune_low_magnitude(copy_model(model), pruning_schedule=schedule(target, total_steps), pruning_policy=policy)
    return wrapped, [t.sparsity.keras.UpdatePruningStep()]


def strip(model):
    from pipeline.tf_import import tfmot

    return tfmot().sparsity.keras.strip_pruning(model)


def xnnpack_policy_check(model) -> str | None:
    """None if tfmot's PruneForLatencyOnXNNPack accepts the model (a subgraph XNNPACK can run sparse:
    3x3 stride-2 conv padded (1,1) on 3 channels ... GlobalAveragePooling2D), else its reason."""
    from pipeline.tf_import import tfmot

    try:
        tfmot().sparsity.keras.PruneForLatencyOnXNNPack().ensure_model_supports_pruning(model)
    except ValueError as e:
        return str(e)
    return None


def sparsity_report(model, pruned_layers: list[str] | None = None) -> dict:
    """Share of zero weights per kernel, over the pruned kernels and over every kernel."""
    from pipeline.compress.common import kernels

    per_layer, zeros, total, pz, pt = {}, 0, 0, 0, 0
    for name, kernel in kernels(model):
        z = int((kernel == 0).sum())
        per_layer[name] = round(z / kernel.size, 4)
        zeros, total = zeros + z, total + kernel.size
        if pruned_layers is None or name in pruned_layers:
            pz, pt = pz + z, pt + kernel.size
    return {"per_layer": per_layer, "overall": round(zeros / max(total, 1), 4),
            "pruned_layers": round(pz / max(pt, 1), 4)}


def pruned_layer_names(wrapped) -> list[str]:
    """Layers tfmot prunes: wrapped, with at least one prunable weight."""
    return [layer.layer.name for layer in wrapped.layers
            if type(layer).__name__ == "PruneLowMagnitude" and layer.prunable_weights]


# ---- XNNPACK's padding condition ----------------------------------------------------------


def _is_stride2_3x3(layer) -> bool:
    name = type(layer).__name__
    return (name in ("Conv2D", "DepthwiseConv2D") and tuple(layer.kernel_size) == (3, 3)
            and tuple(layer.strides) == (2, 2) and tuple(layer.dilation_rate) == (1, 1))


def symmetric_stride2_padding(model):
    """The same network with every 3x3 stride-2 convolution padded 1 on each side, as XNNPACK's
    sparse path requires: "same" convs become ZeroPadding2D(1) + "valid", and an asymmetric
    ZeroPadding2D before a "valid" one (Keras MobileNet V2's correct_pad) becomes (1, 1). For an
    even input size the output shapes stay the same, so every weight is copied unchanged (the
    sampling grid moves by one pixel: fine-tuning follows). Returns (model, rewritten layer names)."""
    from pipeline.tf_import import keras

    k = keras()
    if not getattr(model, "_is_graph_network", False):
        raise ValueError(f"{model.name}: only functional Keras models can be re-padded")
    consumers: dict[str, list] = {}
    for layer in model.layers:
        for node in layer._inbound_nodes:
            for producer in node.inbound_layers if isinstance(node.inbound_layers, list) else [node.inbound_layers]:
                consumers.setdefault(producer.name, []).append(layer)
    new = {}  # id(old KerasTensor) -> new tensor
    inputs = []
    for tensor in model.inputs:
        inputs.append(k.Input(tensor.shape[1:], name=tensor.name.split(":")[0]))
        new[id(tensor)] = inputs[-1]
    rewritten = []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        if len(layer._inbound_nodes) != 1:
            raise ValueError(f"{model.name}: layer '{layer.name}' is used more than once; cannot re-pad")
        source = layer.input
        x = [new[id(t)] for t in source] if isinstance(source, list) else new[id(source)]
        config = layer.get_config()
        after = consumers.get(layer.name, [])
        if _is_stride2_3x3(layer) and config["padding"] == "same":
            x = k.layers.ZeroPadding2D(1, name=f"{layer.name}_pad1")(x)
            config["padding"] = "valid"
            rewritten.append(layer.name)
        elif (type(layer).__name__ == "ZeroPadding2D" and len(after) == 1 and _is_stride2_3x3(after[0])
              and after[0].padding == "valid" and tuple(map(tuple, layer.padding)) != ((1, 1), (1, 1))):
            config["padding"] = ((1, 1), (1, 1))
            rewritten.append(layer.name)
        clone = type(layer).from_config(config)
        out = clone(x)
        clone.set_weights(layer.get_weights())
        new[id(layer.output)] = out
    outputs = [new[id(t)] for t in model.outputs]
    rebuilt = k.Model(inputs, outputs if len(outputs) > 1 else outputs[0], name=model.name)
    if rebuilt.output_shape != model.output_shape:
        raise ValueError(f"{model.name}: re-padding changed the output shape (odd input size?)")
    return rebuilt, rewritten


WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def tflite_weights(data: bytes) -> dict[str, np.ndarray]:
    """The filter tensor of each convolution / fully-connected op of a .tflite, as stored (int8 or
    float), read back by LiteRT. A filter produced by a DENSIFY op (sparse storage) is left out."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    ops = interpreter._get_ops_details()  # no public API lists an op's inputs
    produced = {int(t) for op in ops for t in op["outputs"]}
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    found = {}
    for op in ops:
        if op["op_name"] in WEIGHTED_OPS and int(op["inputs"][1]) not in produced:
            index = int(op["inputs"][1])
            found[details[index]["name"]] = interpreter.get_tensor(index)
    return found


def op_counts(data: bytes) -> dict[str, int]:
    from ai_edge_litert.interpreter import Interpreter

    counts: dict[str, int] = {}
    for op in Interpreter(model_content=data)._get_ops_details():
        counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    return counts


def sparsify_untrained(model, target: float, scope: str = "pointwise", seed: int = 0):
    """The model with tfmot's magnitude masks at `target` applied once, no training: for latency
    measurements, where only where the zeros are matters, not accuracy."""
    from pipeline.tf_import import keras, tfmot

    t = tfmot()
    policy = _pointwise_policy() if scope == "pointwise" else None
    wrapped = t.sparsity.keras.prune_low_magnitude(
        copy_model(model), pruning_schedule=t.sparsity.keras.ConstantSparsity(target, begin_step=0, frequency=1), pruning_policy=policy)
    # One step at learning rate 0: tfmot computes and applies its masks on step 0; no weight moves.
    wrapped.compile(optimizer=keras().optimizers.SGD(0.0), loss="sparse_categorical_crossentropy")
    shape = (1, *model.inputs[0].shape[1:])
    x = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    wrapped.fit(x, np.zeros(1, np.int64), epochs=1, verbose=0, callbacks=[t.sparsity.keras.UpdatePruningStep()])
    return strip(wrapped)


def pointwise_layer_names(model) -> list[str]:
    """The 1x1 Conv2D layers: what scope "pointwise" prunes."""
    policy = _pointwise_policy()
    return [layer.name for layer in model.layers if policy.allow_pruning(layer)]
