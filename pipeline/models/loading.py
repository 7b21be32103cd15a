"""Loading a user's trained Keras model (.keras, .h5, SavedModel) safely, and checking its shape.

Keras 2 (tf_keras) and Keras 3 files are told apart from the file itself (metadata.json or the
.h5 attributes; a SavedModel without keras_metadata.pb is Keras 3's `model.export()`), then
loaded with the library that wrote them, under the same Lambda rule.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UserInputError
from pipeline.models import twin_layers

KERAS_SUFFIXES = {".keras", ".h5", ".hdf5"}


@dataclass(frozen=True)
class ModelShape:
    height: int
    width: int
    channels: int
    num_classes: int


def model_format(path: Path) -> str:
    """'keras', 'h5' or 'savedmodel'; raises UserInputError for anything else."""
    if not path.exists():
        raise UserInputError(f"{path}: model file not found")
    if path.is_dir():
        if (path / "saved_model.pb").exists():
            return "savedmodel"
        raise UserInputError(f"{path}: folder is not a SavedModel (no saved_model.pb)")
    suffix = path.suffix.lower()
    if suffix == ".keras":
        return "keras"
    if suffix in (".h5", ".hdf5"):
        return "h5"
    if suffix == ".onnx":
        raise UserInputError(f"{path}: ONNX models are not supported yet; export a .keras, .h5 or SavedModel")
    raise UserInputError(f"{path}: unknown model format '{suffix}'; use .keras, .h5 or a SavedModel folder")


def _layer_classes(config: dict) -> list[tuple[str, str]]:
    """(name, class_name) of every layer in a serialized Keras model config, nested models included."""
    found = []
    layers = config.get("config", {}).get("layers", []) if isinstance(config.get("config"), dict) else []
    for layer in layers:
        found.append((layer.get("config", {}).get("name", "?"), layer.get("class_name", "?")))
        if layer.get("class_name") in ("Functional", "Sequential", "Model"):
            found.extend(_layer_classes(layer))
    return found


def _serialized_config(path: Path, fmt: str) -> dict | None:
    try:
        if fmt == "keras":
            with zipfile.ZipFile(path) as archive:
                return json.loads(archive.read("config.json"))
        if fmt == "h5":
            import h5py

            with h5py.File(path, "r") as f:
                raw = f.attrs.get("model_config")
                if raw is None:
                    raise UserInputError(f"{path}: .h5 file holds weights only, not a model; save the whole model")
                return json.loads(raw)
    except (zipfile.BadZipFile, KeyError, OSError, json.JSONDecodeError) as e:
        raise UserInputError(f"{path}: not a valid {fmt} model file ({e}); re-save the model") from e
    return None  # SavedModel: Keras checks what it loads


def lambda_layers(path: Path) -> list[str]:
    """Names of Lambda layers, read from the file without deserializing any code."""
    config = _serialized_config(path, model_format(path))
    if config is None:
        return []
    return [name for name, cls in _layer_classes(config) if cls == "Lambda"]


def keras_generation(path: Path) -> int:
    """2 for a tf_keras (Keras 2) file, 3 for a Keras 3 file, read from the file, not guessed."""
    fmt = model_format(path)
    if fmt == "savedmodel":
        return 2 if (path / "keras_metadata.pb").exists() else 3
    version = None
    try:
        if fmt == "keras":
            with zipfile.ZipFile(path) as archive:
                if "metadata.json" in archive.namelist():
                    version = json.loads(archive.read("metadata.json")).get("keras_version")
        else:
            import h5py

            with h5py.File(path, "r") as f:
                version = f.attrs.get("keras_version")
    except (zipfile.BadZipFile, OSError, json.JSONDecodeError) as e:
        raise UserInputError(f"{path}: not a valid {fmt} model file ({e}); re-save the model") from e
    if isinstance(version, bytes):
        version = version.decode()
    return 3 if str(version or "2").split(".")[0] == "3" else 2


def is_keras3_model(model) -> bool:
    return type(model).__module__.startswith("keras.")


def _load_keras3(path: Path, fmt: str, trusted: bool):
    import keras

    if fmt == "savedmodel":  # model.export(): a serving signature, no Keras layers
        layer = keras.layers.TFSMLayer(str(path), call_endpoint="serve")
        inputs = keras.Input(_export_input_shape(path)[1:])
        return keras.Model(inputs, layer(inputs), name=path.name)
    if fmt == "keras":
        return keras.models.load_model(path, compile=False, safe_mode=not trusted)
    return keras.models.load_model(path, compile=False)


def _export_input_shape(path: Path) -> tuple:
    from pipeline.tf_import import tensorflow

    signature = tensorflow().saved_model.load(str(path)).signatures["serving_default"]
    specs = list(signature.structured_input_signature[1].values())
    if len(specs) != 1:
        raise UserInputError(f"{path}: the SavedModel's serving signature has {len(specs)} inputs; an image classifier has one")
    return tuple(specs[0].shape)


def load_keras_model(path: Path, trusted: bool = False):
    """Load with tf_keras or Keras 3, as the file says. Lambda layers carry arbitrary code: refused unless `trusted`."""
    fmt = model_format(path)
    lambdas = lambda_layers(path)
    if lambdas and not trusted:
        raise UserInputError(
            f"{path}: Lambda layer '{lambdas[0]}' would run code stored in the file; "
            "pass --trust-model only if you trust where it came from"
        )
    from pipeline.tf_import import keras

    tf_keras = keras()
    twin_layers.classes()  # registered: a saved twin that uses them loads
    try:
        if keras_generation(path) == 3:
            return _load_keras3(path, fmt, trusted)
        if fmt == "keras":
            return tf_keras.models.load_model(path, compile=False, safe_mode=not trusted)
        return tf_keras.models.load_model(path, compile=False)
    except Exception as e:  # Keras raises many types for a corrupt or foreign file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserInputError(f"{path}: cannot load the model ({first[:300]})") from e


def image_model_shape(model, path: Path | str) -> ModelShape:
    """Check the model takes one (batch, H, W, 1 or 3) image and outputs (batch, classes)."""
    inputs = model.inputs
    if len(inputs) != 1:
        raise UserInputError(f"{path}: model has {len(inputs)} inputs; an image classifier has one")
    shape = tuple(inputs[0].shape)
    if len(shape) != 4 or shape[3] not in (1, 3) or shape[1] is None or shape[2] is None:
        raise UserInputError(
            f"{path}: input shape {shape} is not an image tensor; expected (batch, height, width, 3 or 1) with fixed height and width"
        )
    outputs = model.outputs
    out_shape = tuple(outputs[0].shape)
    if len(outputs) != 1 or len(out_shape) != 2 or out_shape[1] is None:
        raise UserInputError(f"{path}: output shape {out_shape} is not (batch, classes); an image classifier has one")
    return ModelShape(int(shape[1]), int(shape[2]), int(shape[3]), int(out_shape[1]))
