from pathlib import Path

import pytest

from pipeline.errors import UserInputError
from pipeline.models import loading
from tests.conftest import tiny_model


def _keras():
    from pipeline.tf_import import keras

    return keras()


def _lambda_model():
    k = _keras()
    inputs = k.Input((16, 16, 3))
    x = k.layers.Lambda(lambda t: t * 2.0, name="double")(inputs)
    x = k.layers.GlobalAveragePooling2D()(x)
    return k.Model(inputs, k.layers.Dense(3, activation="softmax")(x))


def test_missing_file(tmp_path):
    with pytest.raises(UserInputError, match="nope.keras: model file not found"):
        loading.load_keras_model(tmp_path / "nope.keras")


@pytest.mark.parametrize("name", ["broken.keras", "broken.h5"])
def test_corrupt_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"this is not a model")
    with pytest.raises(UserInputError, match=f"{name}: not a valid"):
        loading.load_keras_model(path)


def test_truncated_keras_file(tmp_path):
    good = tmp_path / "good.keras"
    tiny_model().save(good)
    bad = tmp_path / "truncated.keras"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(UserInputError, match="truncated.keras"):
        loading.load_keras_model(bad)


def test_unknown_format(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"x")
    with pytest.raises(UserInputError, match="unknown model format '.pt'"):
        loading.load_keras_model(path)


def test_weights_only_h5(tmp_path):
    path = tmp_path / "w.weights.h5"
    tiny_model().save_weights(path)
    with pytest.raises(UserInputError, match="weights only"):
        loading.load_keras_model(path)


def test_non_image_input_is_refused(tmp_path):
    k = _keras()
    inputs = k.Input((10,))
    model = k.Model(inputs, k.layers.Dense(3, activation="softmax")(inputs))
    with pytest.raises(UserInputError, match=r"input shape \(None, 10\) is not an image tensor"):
        loading.image_model_shape(model, tmp_path / "m.keras")


def test_image_model_shape(tmp_path):
    assert loading.image_model_shape(tiny_model(20, 4), "m") == loading.ModelShape(20, 20, 3, 4)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_lambda_layers_need_trust(tmp_path, suffix):
    path = tmp_path / f"lambda{suffix}"
    _lambda_model().save(path)
    with pytest.raises(UserInputError, match="Lambda layer 'double'.*--trust-model"):
        loading.load_keras_model(path)
    model = loading.load_keras_model(path, trusted=True)
    assert any(layer.name == "double" for layer in model.layers)


@pytest.mark.parametrize("suffix", [".keras", ".h5", "_savedmodel"])
def test_every_supported_format_loads(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    tiny_model().save(path) if suffix != "_savedmodel" else tiny_model().save(path, save_format="tf")
    model = loading.load_keras_model(path)
    assert loading.image_model_shape(model, path).num_classes == 3


def test_folder_that_is_not_a_savedmodel(tmp_path):
    with pytest.raises(UserInputError, match="not a SavedModel"):
        loading.load_keras_model(tmp_path)
