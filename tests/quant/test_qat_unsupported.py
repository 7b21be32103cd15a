"""QAT's error names the layer that stops tensorflow-model-optimization, not a layer its rewrites handle."""
import pytest

from pipeline.stages.qat import quantize, unsupported_layers
from pipeline.tf_import import keras


def test_a_lambda_after_conv_batchnorm_relu_is_blamed_not_the_batchnorm():
    k = keras()
    inputs = k.Input((8, 8, 3))
    x = k.layers.Conv2D(4, 3, name="conv")(inputs)
    x = k.layers.ReLU(name="relu")(k.layers.BatchNormalization(name="bn")(x))
    x = k.layers.Lambda(lambda t: t * 1.0, name="scale_by_one")(x)
    model = k.Model(inputs, k.layers.Dense(3)(k.layers.GlobalAveragePooling2D()(x)))
    # The registry lists the BatchNormalization first, though tfmot folds it with its Conv2D.
    assert unsupported_layers(model)[0] == ("bn", "BatchNormalization")
    with pytest.raises(ValueError, match=r"^layer 'scale_by_one' \(Lambda\) cannot be quantized$"):
        quantize(model)
