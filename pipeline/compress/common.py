"""What sparsity and clustering share: tfmot's preserving QAT schemes, gzip size, held-out top-1."""
from __future__ import annotations

import gzip

import numpy as np

# --qat scheme -> the tfmot collaborative-optimization scheme that keeps the compression through QAT.
QAT_SCHEMES = ("default", "prune-preserve", "cluster-preserve", "prune-cluster-preserve")


def quantize_with_scheme(model, scheme: str):
    """quantize_annotate_model + quantize_apply with a preserving scheme (tfmot's collaborative
    optimization), or plain quantize_model for "default". The model must be stripped (no
    pruning/clustering wrappers) first."""
    from pipeline.tf_import import tfmot

    t = tfmot()
    if scheme not in QAT_SCHEMES:
        raise ValueError(f"unknown QAT scheme {scheme!r} (choose from {', '.join(QAT_SCHEMES)})")
    from pipeline.quant.qat_annotations import annotate

    annotated = annotate(model)  # layers the default registry lacks, with their QuantizeConfig
    if scheme == "default":
        if annotated is None:
            return check_concatenate_order(model, t.quantization.keras.quantize_model(model))
        with quantize_scope():
            return check_concatenate_order(model, t.quantization.keras.quantize_apply(annotated))
    combine = t.experimental.combine
    schemes = {
        "prune-preserve": combine.Default8BitPrunePreserveQuantizeScheme,
        "cluster-preserve": combine.Default8BitClusterPreserveQuantizeScheme,
        # Clusters and zeros both kept (tfmot's PCQAT).
        "prune-cluster-preserve": lambda: combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True),
    }
    annotated = annotated or t.quantization.keras.quantize_annotate_model(model)
    with quantize_scope():
        return check_concatenate_order(model, t.quantization.keras.quantize_apply(annotated, schemes[scheme]()))


class ReorderedConcatenate(ValueError):
    """tfmot changed the order of a Concatenate's inputs (see check_concatenate_order)."""


def check_concatenate_order(model, quantized):
    """`quantized`, or a ValueError naming a Concatenate whose inputs tfmot reordered.

    tfmot can reorder them (model-optimization#1061, open): an input that goes through a
    Conv-BatchNorm-ReLU rewrite moves to the end, and the quantized model then computes with
    channels in the wrong places (a ShuffleNet whose concatenation was [slice, branch, slice] fell
    to chance in QAT). Rebuilding the model from a repaired config does not restore tfmot's
    quantizer variables, so the QAT stage reports it and the build falls back to PTQ.
    """
    if not any(type(layer).__name__ == "Concatenate" for layer in model.layers):
        return quantized  # also every Sequential model, whose config has no names or inbound nodes per layer
    original = {spec["name"]: _inbound_names(spec) for spec in model.get_config()["layers"]
                if spec["class_name"] == "Concatenate"}
    for spec in quantized.get_config()["layers"]:
        want = original.get(spec["name"].removeprefix("quant_"))
        if want is not None and _inbound_names(spec) != want:
            raise ReorderedConcatenate(
                f"layer '{spec['name'].removeprefix('quant_')}' (Concatenate): tensorflow-model-optimization reorders "
                f"its inputs (model-optimization#1061: inputs made by Conv2D-BatchNormalization-ReLU move to the end); "
                f"put those inputs last in the model")
    return quantized


def _inbound_names(spec) -> list[str]:
    """The names of the layers feeding a layer's first call, without tfmot's "quant_" prefix."""
    nodes = spec["inbound_nodes"]
    return [node[0].removeprefix("quant_") for node in nodes[0]] if nodes else []


def gzip_size(data: bytes) -> int:
    """Bytes after gzip at the default level: how tfmot's guides report a compressed model's size
    (zeros and repeated values only shrink a file once it is compressed)."""
    return len(gzip.compress(data))


def top1(model, split, prep, batch_size: int = 128) -> float:
    """Float top-1 of a Keras model on a Split, read in batches."""
    correct = 0
    for images, labels in split.batches(batch_size):
        scores = model.predict(prep.apply(images), verbose=0)
        correct += int((np.argmax(scores, axis=-1) == labels).sum())
    return correct / max(len(split), 1)


def copy_model(model):
    """An independent copy (same layer names and weights): tfmot's prune_low_magnitude wraps the
    given model's own layer objects, so pruning would zero the caller's model too."""
    from pipeline.tf_import import keras

    copy = keras().models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def kernels(model):
    """(layer name, kernel array) for every Conv2D / DepthwiseConv2D / Dense kernel of a plain model."""
    for layer in model.layers:
        for weight in layer.weights:
            short = weight.name.split("/")[-1].split(":")[0]
            if short in ("kernel", "depthwise_kernel"):
                yield layer.name, weight.numpy()


def quantize_scope():
    """tfmot's quantize_scope plus the preserving schemes' weight quantizers, the QuantizeConfigs of
    pipeline/quant/qat_annotations.py and the layers of pipeline/models/twin_layers.py, which it does
    not list: a QAT model saved with them needs them to load."""
    from pipeline.tf_import import tfmot

    t = tfmot()
    # Not exported by tfmot's public API; the module paths are those of 0.8.
    from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.cluster_preserve import (
        cluster_preserve_quantize_registry as cluster,
    )
    from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.prune_preserve import (
        prune_preserve_quantize_registry as prune,
    )

    from pipeline.models import twin_layers
    from pipeline.quant.qat_annotations import output_config_class

    classes = (*twin_layers.classes().values(),  # tfmot clones by class name: a twin that uses them quantizes and loads
               prune.PrunePreserveDefaultWeightsQuantizer, prune.PrunePreserveDefault8BitWeightsQuantizer,
               prune.PrunePreserveDefault8BitConvWeightsQuantizer, cluster.ClusterPreserveDefaultWeightsQuantizer,
               cluster.ClusterPreserveDefault8BitWeightsQuantizer, cluster.ClusterPreserveDefault8BitConvWeightsQuantizer,
               output_config_class())
    return t.quantization.keras.quantize_scope({c.__name__: c for c in classes})
