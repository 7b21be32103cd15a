"""tensorflow-model-optimization reorders a Concatenate's inputs when one of them comes out of a
Conv2D-BatchNormalization-ReLU rewrite (model-optimization#1061): QAT must refuse such a model, by
name, rather than train a model that computes with its channels in the wrong places."""
import pytest

from pipeline.stages.qat import quantize
from pipeline.tf_import import keras


def _model(branch_last: bool):
    k = keras()
    layers = k.layers
    inputs = k.Input((4, 4, 8))
    front = layers.Reshape((4, 4, 8), name="front")(inputs)
    back = layers.Reshape((4, 4, 8), name="back")(inputs)
    branch = layers.Conv2D(4, 1, name="conv")(inputs)
    branch = layers.ReLU(name="relu")(layers.BatchNormalization(name="bn")(branch))
    order = [front, back, branch] if branch_last else [front, branch, back]
    return k.Model(inputs, layers.Concatenate(name="cat")(order))


def _concat_inputs(model, name):
    return [t.node.layer.name.removeprefix("quant_") for t in model.get_layer(name).input]


def test_a_reordered_concatenate_is_named():
    with pytest.raises(ValueError, match=r"layer 'cat' \(Concatenate\).*model-optimization#1061") as err:
        quantize(_model(branch_last=False))
    assert "\n" not in str(err.value)


def test_the_branch_last_keeps_its_order():
    quantized = quantize(_model(branch_last=True))
    assert _concat_inputs(quantized, "quant_cat") == ["front", "back", "relu"]
