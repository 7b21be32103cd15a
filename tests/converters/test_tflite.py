"""Every precision the converter produces, run back in LiteRT and checked against Keras."""
import numpy as np
import pytest

from converters import tflite
from pipeline.data import load_image_folder
from pipeline.errors import ToolError
from pipeline.models.loading import load_keras_model
from pipeline.runtimes import litert


@pytest.fixture(scope="module")
def model_and_data(trained_model_file, image_folder):
    images = load_image_folder(image_folder, 16, 16)
    x = (images.images.astype(np.float32) - 127.5) / 127.5
    return load_keras_model(trained_model_file), x, images.labels


@pytest.fixture(scope="module")
def artifacts(model_and_data, tmp_path_factory):
    model, x, _ = model_and_data
    folder = tmp_path_factory.mktemp("tflite")
    made = {}
    calibration = x[::3]  # every class: ranges calibrated on one class clip the others
    for precision in ("fp32", "fp16", "dynamic-int8", "int8-ptq"):
        made[precision] = tflite.write(tflite.convert(model, precision, calibration), folder / f"{precision}.tflite")
    made["int8-io"] = tflite.write(tflite.convert(model, "int8-ptq", calibration, int8_io=True), folder / "int8io.tflite")
    return made


@pytest.mark.slow
def test_fp32_matches_keras(model_and_data, artifacts):
    model, x, _ = model_and_data
    expected = model.predict(x, verbose=0)
    assert np.abs(litert.predict(artifacts["fp32"], x) - expected).max() < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("precision, tolerance", [("fp16", 1e-2), ("dynamic-int8", 0.1), ("int8-ptq", 0.1), ("int8-io", 0.1)])
def test_reduced_precisions_stay_close_and_agree(model_and_data, artifacts, precision, tolerance):
    model, x, labels = model_and_data
    expected = model.predict(x, verbose=0)
    got = litert.predict(artifacts[precision], x)
    assert np.abs(got - expected).max() < tolerance
    assert np.mean(got.argmax(1) == expected.argmax(1)) >= 0.95


@pytest.mark.slow
def test_int8_check_tells_full_int8_from_float_compute(artifacts):
    assert litert.float_compute_ops(artifacts["int8-ptq"]) == []
    assert litert.float_compute_ops(artifacts["int8-io"]) == []
    # Dynamic range quantization keeps float activations: the check must see them.
    assert litert.float_compute_ops(artifacts["dynamic-int8"])
    assert any(op.startswith("CONV_2D") for op in litert.float_compute_ops(artifacts["fp32"]))


@pytest.mark.slow
def test_io_types(artifacts):
    assert litert.io_types(artifacts["int8-ptq"]) == {"input": "float32", "output": "float32"}
    assert litert.io_types(artifacts["int8-io"]) == {"input": "int8", "output": "int8"}


@pytest.mark.slow
def test_every_artifact_keeps_the_serving_signature(artifacts):
    # The converter drops the signature silently when it cannot save what it is given beside the
    # function (converters/tflite._weights_only); apps using LiteRT's signature runner need it.
    from ai_edge_litert.interpreter import Interpreter

    for path in artifacts.values():
        assert Interpreter(model_path=str(path)).get_signature_list() == {
            "serving_default": {"inputs": ["x"], "outputs": ["output_0"]}}, path.name


def test_full_int8_needs_calibration(model_and_data):
    with pytest.raises(ValueError, match="calibration"):
        tflite.convert(model_and_data[0], "int8-ptq", None)


def test_unknown_precision(model_and_data):
    with pytest.raises(ValueError, match="unknown precision 'int4'"):
        tflite.convert(model_and_data[0], "int4")


def test_converter_failure_is_a_tool_error_with_its_message():
    from pipeline.tf_import import keras

    k = keras()
    inputs = k.Input((4, 4, 3))
    # TFLite has no kernel for Igamma, builtin or flex: the converter must fail and say which op.
    outputs = k.layers.Lambda(lambda t: __import__("tensorflow").math.igamma(t + 2.0, t + 3.0))(inputs)
    model = k.Model(inputs, k.layers.Flatten()(outputs), name="igamma_model")
    with pytest.raises(ToolError, match=r"TFLite converter failed for igamma_model \(fp32\).*tf\.Igamma"):
        tflite.convert(model, "fp32")


@pytest.mark.slow
def test_onnx2tf_names_an_op_it_cannot_convert(trained_model_file, tmp_path):
    import onnx

    from converters import onnx as onnx_converter

    proto = onnx_converter.load(onnx_converter.from_keras(load_keras_model(trained_model_file), tmp_path / "tiny.onnx"))
    out = proto.graph.output[0].name
    proto.graph.node.append(onnx.helper.make_node("CastLike", [out, out], ["same"], name="cast_back"))
    proto.graph.output[0].name = "same"
    proto.opset_import[0].version = 15  # CastLike's first opset
    path = onnx_converter.save(proto, tmp_path / "castlike.onnx")
    onnx_converter.load(path)  # valid ONNX: the converter is what cannot handle it
    with pytest.raises(ToolError, match="onnx2tf cannot convert castlike.onnx: op CastLike \\(node 'cast_back'\\) is not implemented"):
        tflite.from_onnx(path, None, tmp_path / "out")
