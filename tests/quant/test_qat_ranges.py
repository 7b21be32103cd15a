"""The QAT stage measures activation ranges before fine-tuning (pipeline/quant/qat_ranges.py):
tfmot's start, [-6, 6] moved by a 0.999 moving average, clips a ReLU that reaches 20 and spends
half of int8 on negatives."""
import numpy as np
import pytest

from pipeline.quant.qat_ranges import observe_ranges
from pipeline.stages.qat import quantize
from pipeline.tf_import import keras


def _float_model():
    k = keras()
    inputs = k.Input((6, 6, 3))
    x = k.layers.Conv2D(8, 3, name="conv", kernel_initializer=k.initializers.Constant(1.0))(inputs)
    x = k.layers.BatchNormalization(name="bn")(x)
    x = k.layers.ReLU(name="relu")(x)
    x = k.layers.GlobalAveragePooling2D(name="pool")(x)
    return k.Model(inputs, k.layers.Dense(4, name="head")(x))


def _batches(count=4, size=16):
    rng = np.random.default_rng(0)
    return [rng.uniform(0, 1, (size, 6, 6, 3)).astype(np.float32) for _ in range(count)]


def _range(model, name):
    values = {w.name.split("/")[-1].split(":")[0]: float(w.numpy()) for w in model.get_layer(name).weights
              if w.name.split(":")[0].endswith(("output_min", "output_max"))}
    return values["output_min"], values["output_max"]


def test_ranges_become_the_running_mean_of_each_batch_range():
    model = _float_model()
    qat = quantize(model)
    assert _range(qat, "quant_relu") == (-6.0, 6.0)  # tfmot's start
    batches = _batches()
    relu = keras().Model(model.input, model.get_layer("relu").output)
    expected = np.mean([relu(b, training=False).numpy().max() for b in batches])  # ~20: 27 inputs up to 1
    assert observe_ranges(qat, iter(batches)) == 64
    low, high = _range(qat, "quant_relu")
    assert low == 0.0
    assert high == pytest.approx(expected, rel=0.02)  # the input's own 8-bit rounding moves it a little


def test_overall_ranges_are_the_min_and_max_over_every_batch_as_ptq_calibration_measures():
    model = _float_model()
    qat = quantize(model)
    batches = _batches()
    relu = keras().Model(model.input, model.get_layer("relu").output)
    expected = max(relu(b, training=False).numpy().max() for b in batches)
    assert observe_ranges(qat, iter(batches), overall=True) == 64
    low, high = _range(qat, "quant_relu")
    assert low == 0.0 and high == pytest.approx(expected, rel=0.02)
    assert high > np.mean([relu(b, training=False).numpy().max() for b in batches])  # wider than the running mean


def test_observing_changes_no_trained_weight_and_brings_the_quantized_model_to_the_float_one():
    model = _float_model()
    qat = quantize(model)
    before = [w.numpy().copy() for w in qat.trainable_weights]
    batch = _batches(1)[0]
    float_out = model(batch, training=False).numpy()
    error_at_start = np.abs(qat(batch, training=False).numpy() - float_out).max()
    observe_ranges(qat, iter(_batches()))
    error_observed = np.abs(qat(batch, training=False).numpy() - float_out).max()
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, qat.trainable_weights))
    assert error_observed < error_at_start / 10, (error_at_start, error_observed)


def test_tfmot_is_restored_even_when_a_batch_fails():
    from tensorflow_model_optimization.python.core.quantization.keras import quant_ops

    original = quant_ops.MovingAvgQuantize
    qat = quantize(_float_model())
    with pytest.raises(Exception):
        observe_ranges(qat, iter([np.zeros((2, 5, 5, 3), np.float32)]))  # wrong input shape
    assert quant_ops.MovingAvgQuantize is original
    low, high = _range(qat, "quant_relu")
    assert (low, high) == (-6.0, 6.0)  # and a later fine-tuning starts from tfmot's own behaviour
