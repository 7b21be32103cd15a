"""The tf_keras twin of Keras 3 models (and of tf_keras models with preprocessing layers)."""
from __future__ import annotations

import types

import numpy as np
import pytest

from pipeline.models import keras3_twin


def _keras3():
    from pipeline.tf_import import tensorflow

    tensorflow()  # TF_USE_LEGACY_KERAS first, as the pipeline does: `import keras` is still Keras 3
    import keras

    return keras


def _images(size=32, channels=3, n=8, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, channels)).astype(np.float32)


def _small_cnn(k, channels=3, classes=4, front=()):
    layers = k.layers
    return k.Sequential([
        k.Input((16, 16, channels)), *front,
        layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False), layers.BatchNormalization(), layers.ReLU(6.0),
        layers.DepthwiseConv2D(3, padding="same"), layers.ReLU(),
        layers.GlobalAveragePooling2D(), layers.Dense(classes, activation="softmax"),
    ], name="small")


def _assert_twin_equal(model, x):
    twin = keras3_twin.build_twin(model)
    assert type(twin.model).__module__.startswith("tf_keras")
    assert keras3_twin.max_abs_diff(model, twin, x) <= keras3_twin.TOLERANCE
    return twin


@pytest.mark.slow
@pytest.mark.parametrize("application", ["MobileNet", "MobileNetV2"])
def test_keras_applications_twin_exactly(application):
    k = _keras3()
    model = getattr(k.applications, application)(input_shape=(32, 32, 3), alpha=0.25 if application == "MobileNet" else 0.35,
                                                 weights=None, classes=5)
    twin = _assert_twin_equal(model, _images())
    assert twin.folded == [] and twin.removed == []
    assert twin.model.count_params() == model.count_params()


@pytest.mark.slow
def test_nested_transfer_learning_model_folds_rescaling_and_drops_augmentation():
    k = _keras3()
    base = k.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=3)
    model = k.Sequential([k.Input((32, 32, 3)), k.layers.Rescaling(1 / 127.5, offset=-1, name="scale_in"),
                          k.layers.RandomFlip(name="flip"), base])
    twin = _assert_twin_equal(model, _images() * 127.5 + 127.5)  # the model takes raw pixels
    assert twin.folded == ["'scale_in' (Rescaling)"] and twin.removed == ["'flip' (RandomFlip)"]
    np.testing.assert_allclose(twin.scale, 1 / 127.5)
    np.testing.assert_allclose(twin.offset, -1.0)
    assert not any(type(layer).__name__ in ("Rescaling", "RandomFlip") for layer in twin.model.layers)


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ["shufflenet_v2", "squeezenet"])
def test_keras3_models_of_the_builtin_shufflenet_and_squeezenet_layers_twin(monkeypatch, architecture):
    """The built-in architectures' code, run with Keras 3 layers (Reshape/Cropping2D/Permute/Concatenate...)."""
    k = _keras3()
    from pipeline import tf_import
    from pipeline.models import architectures

    keras3 = types.SimpleNamespace(layers=k.layers, Model=k.Model, Input=k.Input,
                                   backend=types.SimpleNamespace(int_shape=lambda t: tuple(t.shape)))
    monkeypatch.setattr(tf_import, "keras", lambda: keras3)
    model = architectures.build(architecture, 32, 4)
    monkeypatch.undo()
    assert type(model).__module__.startswith("keras.")
    _assert_twin_equal(model, _images())


def test_a_twin_that_differs_is_caught_and_the_layer_named():
    k = _keras3()
    model = _small_cnn(k)
    x = _images(16)
    twin = keras3_twin.build_twin(model)
    dense = next(layer for layer in twin.model.layers if type(layer).__name__ == "Dense")
    kernel, bias = dense.get_weights()
    kernel[0, 0] += 5.0  # one copied weight corrupted
    dense.set_weights([kernel, bias])
    assert keras3_twin.max_abs_diff(model, twin, x) > keras3_twin.TOLERANCE
    assert keras3_twin.differing_layer(model, twin, x).startswith(f"'{dense.name}' (Dense")


def test_normalization_layer_is_folded_per_channel():
    k = _keras3()
    norm = k.layers.Normalization()
    norm.adapt(np.random.default_rng(1).uniform(0, 255, (20, 16, 16, 3)).astype(np.float32))
    model = _small_cnn(k, front=[norm])
    twin = _assert_twin_equal(model, _images(16) * 127.5 + 127.5)
    mean, var = np.asarray(norm.mean).reshape(-1), np.asarray(norm.variance).reshape(-1)
    np.testing.assert_allclose(twin.scale, 1 / np.sqrt(var), rtol=1e-5)
    np.testing.assert_allclose(twin.offset, -mean / np.sqrt(var), rtol=1e-5)


def test_grayscale_keras3_model_twins():
    k = _keras3()
    model = _small_cnn(k, channels=1, front=[k.layers.Rescaling(1 / 255)])
    twin = _assert_twin_equal(model, _images(16, 1) * 127.5 + 127.5)
    assert twin.model.inputs[0].shape[-1] == 1 and twin.scale.shape == (1,)


def test_tf_keras_model_with_rescaling_needs_and_gets_a_twin():
    from pipeline.tf_import import keras

    tk = keras()
    inputs = tk.Input((16, 16, 3))
    x = tk.layers.Rescaling(1 / 255, name="scale_in")(inputs)
    x = tk.layers.Conv2D(4, 3)(x)
    x = tk.layers.GlobalAveragePooling2D()(x)
    model = tk.Model(inputs, tk.layers.Dense(3, activation="softmax")(x))
    assert keras3_twin.needs_twin(model)
    twin = _assert_twin_equal(model, _images(16) * 127.5 + 127.5)
    assert twin.folded == ["'scale_in' (Rescaling)"]
    from tests.conftest import tiny_model

    assert not keras3_twin.needs_twin(tiny_model())  # a plain tf_keras model is used as it is


def test_layer_without_twin_is_named():
    k = _keras3()
    model = k.Sequential([k.Input((16, 16, 3)), k.layers.Conv2D(4, 3), k.layers.UpSampling2D(name="up"),
                          k.layers.GlobalAveragePooling2D(), k.layers.Dense(3)])
    with pytest.raises(keras3_twin.NoTwin, match=r"layer 'up' \(UpSampling2D\) has no tf_keras twin"):
        keras3_twin.build_twin(model)
