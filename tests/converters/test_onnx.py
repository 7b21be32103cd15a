"""Keras -> ONNX (tf2onnx) checked in onnxruntime, and the checks every ONNX file gets."""
from pathlib import Path

import numpy as np
import pytest

from converters import onnx as onnx_converter
from pipeline.errors import UserInputError
from pipeline.models.loading import load_keras_model
from pipeline.runtimes import onnxruntime as ort_runtime


@pytest.fixture(scope="module")
def exported(trained_model_file, tmp_path_factory):
    model = load_keras_model(trained_model_file)
    path = onnx_converter.from_keras(model, tmp_path_factory.mktemp("onnx") / "tiny.onnx")
    return model, path


def test_keras_export_matches_keras_in_onnxruntime(exported):
    model, path = exported
    x = np.random.default_rng(0).uniform(-1, 1, (8, 16, 16, 3)).astype(np.float32)
    keras_out = model.predict(x, verbose=0)
    onnx_out = ort_runtime.predict(path, x.transpose(0, 3, 1, 2))
    assert np.abs(onnx_out - keras_out).max() < 1e-4
    proto = onnx_converter.load(path)
    sig = onnx_converter.signature(proto, path, None)
    assert sig.input_shape == [1, 3, 16, 16] and onnx_converter.num_classes(proto) == 3
    assert onnx_converter.count_macs(onnx_converter.with_static_shape(proto, sig)) > 0


def test_not_onnx_and_truncated_files_are_user_errors(exported, tmp_path):
    _, path = exported
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model\n")
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    for bad in (text, truncated):
        with pytest.raises(UserInputError, match=f"{bad.name}: .*ONNX"):
            onnx_converter.load(bad)


def test_dynamic_dims_need_input_shape(exported, tmp_path):
    _, path = exported
    proto = onnx_converter.load(path)
    for dim in proto.graph.input[0].type.tensor_type.shape.dim:
        dim.Clear()
        dim.dim_param = "d"
    with pytest.raises(UserInputError, match="dynamic dims .*--input-shape"):
        onnx_converter.signature(proto, Path("dyn.onnx"), None)
    sig = onnx_converter.signature(proto, Path("dyn.onnx"), [4, 3, 16, 16])
    assert sig.input_shape == [1, 3, 16, 16]  # batch is always 1, as apps run it
    with pytest.raises(UserInputError, match="not NCHW"):
        onnx_converter.signature(proto, Path("dyn.onnx"), [1, 16, 16, 3])
