"""QuantizeConfigs for layers tensorflow-model-optimization's default registry has none for, given
through its extension point (quantize_annotate_layer with a QuantizeConfig; the class is listed in
compress.common.quantize_scope so a saved QAT model loads):

- Multiply, the excitation of squeeze-excite blocks (MobileNetV3, EfficientNet: feature map times
  per-channel weights): tfmot's own Default8BitOutputQuantizeConfig, which quantizes the product
  (model-optimization#733). Both factors come quantized from the layers before it, so TFLite's MUL
  runs in int8 (tested: no float op in the int8-qat artifact).
- HardSwish, HardSigmoid, Affine (models/twin_layers.py: Keras 3's hard_silu and hard_sigmoid, and
  its operations with a constant, in the twin): the same config; no weights, the output quantized,
  so TFLite runs HARD_SWISH, ADD and MUL in int8.
"""
from __future__ import annotations

from pipeline.models import twin_layers

OUTPUT_QUANTIZED = ("Multiply", *twin_layers.NAMES)


def output_config_class():
    # Not exported by tfmot's public API; the module path is that of 0.8.
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit.default_8bit_quantize_configs import (
        Default8BitOutputQuantizeConfig,
    )

    return Default8BitOutputQuantizeConfig


def annotated_layers(model) -> list[str]:
    return [layer.name for layer in model.layers if type(layer).__name__ in OUTPUT_QUANTIZED]


def annotate(model):
    """quantize_annotate_model, with the layers above given their QuantizeConfig; None when the model
    has none of them (plain quantize_model then does the same)."""
    from pipeline.tf_import import keras, tfmot

    names = set(annotated_layers(model))
    if not names:
        return None
    q = tfmot().quantization.keras
    config = output_config_class()

    def clone(layer):
        copy = layer.__class__.from_config(layer.get_config())
        return q.quantize_annotate_layer(copy, config()) if layer.name in names else copy

    annotated = keras().models.clone_model(model, clone_function=clone)
    annotated.set_weights(model.get_weights())
    return q.quantize_annotate_model(annotated)
