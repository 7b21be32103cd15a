"""tf_keras layers for what a Keras 3 model computes with no tf_keras layer of the same meaning,
for the tf_keras twin (models/keras3_twin.py) and its QAT (quant/qat_annotations.py gives each a
QuantizeConfig that quantizes its output).

- HardSwish, HardSigmoid: Keras 3's `hard_silu` / `hard_swish` and `hard_sigmoid` activations
  (MobileNetV3). tf_keras has no hard_silu, and its hard_sigmoid is another function
  (0.2 x + 0.5, where Keras 3 computes relu6(x + 3) / 6).
- Affine: x * scale + offset, numbers or one per channel (the last axis): the twin of a Keras 3
  operation between a tensor and a constant (`x + 3.0`, `x * (1 / 6)`: Keras 3's MobileNetV3 writes
  its hard sigmoid so), of a Rescaling or Normalization inside the model, and the QAT rewrite of a
  BatchNormalization after a Dense. `affine()` makes one Affine for the product and one for the
  sum when both are needed: each output gets its own int8 range in QAT (a product with no range
  of its own stays float in TFLite).

Written here because neither library has them; registered with tf_keras's serialization so a saved
twin or QAT model loads without custom_objects. The classes are made on first use: importing this
module does not import TensorFlow.
"""
from __future__ import annotations

import functools

import numpy as np

# Keras 3 activation name -> the layer class here computing it
ACTIVATIONS = {"hard_silu": "HardSwish", "hard_swish": "HardSwish", "hard_sigmoid": "HardSigmoid"}
NAMES = ("HardSwish", "HardSigmoid", "Affine")  # every class here; quant.qat_annotations quantizes their outputs


@functools.cache
def classes() -> dict[str, type]:
    from pipeline.tf_import import keras, tensorflow

    tf, k = tensorflow(), keras()
    register = k.utils.register_keras_serializable(package="deploy")

    @register
    class HardSwish(k.layers.Layer):
        def call(self, x):
            # The form TFLite's converter fuses into one HARD_SWISH op.
            return x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0)

    @register
    class HardSigmoid(k.layers.Layer):
        def call(self, x):
            return tf.nn.relu6(x + 3.0) * (1.0 / 6.0)

    @register
    class Affine(k.layers.Layer):
        def __init__(self, scale=1.0, offset=0.0, **kwargs):
            super().__init__(**kwargs)
            self.scale, self.offset = _plain(scale), _plain(offset)

        def call(self, x):
            if self.scale != 1.0:
                x = x * tf.constant(self.scale, x.dtype)
            if self.offset != 0.0:
                x = x + tf.constant(self.offset, x.dtype)
            return x

        def get_config(self):
            return {**super().get_config(), "scale": self.scale, "offset": self.offset}

    return {"HardSwish": HardSwish, "HardSigmoid": HardSigmoid, "Affine": Affine}


def _plain(value):
    """A number, or a list of numbers (one per channel) for a config that serializes to JSON."""
    array = np.asarray(value, np.float64).reshape(-1)
    if np.all(array == array[0]):
        return float(array[0])
    return [float(v) for v in array]


def affine(x, scale, offset, name: str):
    """x * scale + offset in the twin: an Affine for each part that is not the identity (none: x)."""
    Affine = classes()["Affine"]
    scale, offset = _plain(scale), _plain(offset)
    if scale != 1.0:
        x = Affine(scale, 0.0, name=name if offset == 0.0 else f"{name}_scale")(x)
    if offset != 0.0:
        x = Affine(1.0, offset, name=name if scale == 1.0 else f"{name}_offset")(x)
    return x
