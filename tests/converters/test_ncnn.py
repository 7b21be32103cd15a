"""ONNX -> ncnn with pnnx: the graph fixes on the architectures that need them, the int8 writer
checked by ncnn's own loader, and the errors for ops ncnn does not have and crashing converters."""
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from converters import ncnn as ncnn_converter
from converters import onnx as onnx_converter
from pipeline.errors import ToolError, UserInputError
from pipeline.models.loading import load_keras_model
from pipeline.runtimes import ncnn as ncnn_runtime
from pipeline.runtimes import onnxruntime as ort_runtime


def _to_ncnn(proto, folder: Path, stem: str, fix: bool = True, fp16: bool = False):
    if fix:
        proto = ncnn_converter.prepare_for_pnnx(proto)
    path = onnx_converter.save(proto, folder / f"{stem}.onnx")
    shape = onnx_converter.signature(proto, path, None).input_shape
    return path, *ncnn_converter.convert(path, shape, fp16, folder, stem)


def _inputs(shape, n=4):
    return np.random.default_rng(0).uniform(-1, 1, (n, *shape[1:])).astype(np.float32)


def _layer_types(param: Path) -> set[str]:
    return {layer.type for layer in ncnn_converter.read_param(param).layers}


@pytest.mark.slow
def test_zero_padding_of_mobilenet_v1_is_fused_into_convolutions(tmp_path):
    from pipeline.models import architectures

    model = architectures.build("mobilenet_v1", 32, 4, alpha=0.25)
    proto = onnx_converter.load(onnx_converter.from_keras(model, tmp_path / "mnv1.onnx"))
    assert any(n.op_type == "Pad" for n in proto.graph.node)  # Keras' ZeroPadding2D
    (tmp_path / "unfixed").mkdir()
    with pytest.raises(ToolError, match="op Pad \\(nodes 'mobilenet_v1/conv_pad_2/Pad'.* has no ncnn layer"):
        _to_ncnn(proto, tmp_path / "unfixed", "mnv1", fix=False)
    path, param, weights = _to_ncnn(proto, tmp_path, "mnv1")
    assert "Pad" not in _layer_types(param)
    x = _inputs([1, 3, 32, 32])
    assert np.abs(ncnn_runtime.predict(param, weights, x) - ort_runtime.predict(tmp_path / "mnv1.onnx", x)).max() < 1e-4


@pytest.mark.slow
def test_split_of_a_keras_shufflenet_unit_gets_explicit_sizes(tmp_path):
    """A user's Keras ShuffleNet writes its channel split with tf.split; tf2onnx leaves the Split
    without sizes and pnnx turns it into a Slice without sizes, which crashes ncnn."""
    from pipeline.tf_import import keras, tensorflow

    tf, k = tensorflow(), keras()
    inputs = k.Input((8, 8, 3))
    x = k.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    kept, branch = k.layers.Lambda(lambda t: tf.split(t, 2, axis=-1))(x)
    branch = k.layers.Conv2D(8, 1, activation="relu")(branch)
    x = k.layers.GlobalAveragePooling2D()(k.layers.Concatenate()([kept, branch]))
    model = k.Model(inputs, k.layers.Dense(3)(x))
    proto = onnx_converter.load(onnx_converter.from_keras(model, tmp_path / "split.onnx"))
    [split] = [n for n in proto.graph.node if n.op_type == "Split"]
    assert len(split.input) == 1  # no sizes
    (tmp_path / "unfixed").mkdir()
    _, unfixed_param, _ = _to_ncnn(proto, tmp_path / "unfixed", "split", fix=False)
    [slice_layer] = [l for l in ncnn_converter.read_param(unfixed_param).layers if l.type == "Slice"]
    assert "-23300" not in slice_layer.params
    _, param, weights = _to_ncnn(proto, tmp_path, "split")
    [slice_layer] = [l for l in ncnn_converter.read_param(param).layers if l.type == "Slice"]
    assert slice_layer.params["-23300"] == "2,8,8"
    x = _inputs([1, 3, 8, 8])
    assert np.abs(ncnn_runtime.predict(param, weights, x) - ort_runtime.predict(tmp_path / "split.onnx", x)).max() < 1e-4


@pytest.fixture(scope="module")
def tiny_ncnn(trained_model_file, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ncnn")
    proto = onnx_converter.load(onnx_converter.from_keras(load_keras_model(trained_model_file), folder / "t.onnx"))
    return _to_ncnn(proto, folder, "tiny")


def test_fp16_storage_halves_the_weights(tiny_ncnn, tmp_path):
    path, param, weights = tiny_ncnn
    proto = onnx_converter.load(path)
    _, param16, weights16 = _to_ncnn(proto, tmp_path, "tiny16", fp16=True)
    assert weights16.stat().st_size < 0.7 * weights.stat().st_size
    x = _inputs([1, 3, 16, 16])
    assert np.abs(ncnn_runtime.predict(param16, weights16, x, "fp16") - ort_runtime.predict(path, x)).max() < 1e-2


def test_int8_layers_load_in_ncnn_and_stay_close_to_fp32(tiny_ncnn, tmp_path):
    path, param, weights = tiny_ncnn
    x = _inputs([1, 3, 16, 16], n=24)
    scales = ncnn_converter.calibrate(param, weights, x[:16], "kl", 99.99, set())
    layers = [l for l in ncnn_converter.read_param(param).layers if l.type in ncnn_converter.QUANTIZABLE]
    assert set(scales) == {l.name for l in layers} and all(s > 0 for s in scales.values())
    q_param, q_bin = tmp_path / "q.ncnn.param", tmp_path / "q.ncnn.bin"
    quantized = ncnn_converter.write_int8(param, weights, scales, q_param, q_bin)
    assert ncnn_converter.int8_layers(q_param) == (quantized, [])
    first_conv = next(l for l in ncnn_converter.read_param(q_param).layers if l.type == "Convolution")
    assert first_conv.int_param(8) == 102  # int8 output requantized straight into the depthwise conv
    assert q_bin.stat().st_size < 0.5 * weights.stat().st_size  # int8 weights, float biases and scales
    # ncnn's own loader accounts for every byte: the file splits exactly at the layer boundaries.
    assert len(ncnn_converter.split_bin(ncnn_converter.read_param(q_param), q_bin.read_bytes(), "q")) == len(layers) + 5
    fp32, int8 = ncnn_runtime.predict(param, weights, x[16:]), ncnn_runtime.predict(q_param, q_bin, x[16:], "int8")
    assert 0 < np.abs(fp32 - int8).max() < 0.05  # int8 arithmetic: close, not identical
    assert (fp32.argmax(1) == int8.argmax(1)).mean() >= 0.75


def test_float_layers_option(tiny_ncnn, tmp_path):
    _, param, weights = tiny_ncnn
    parsed = ncnn_converter.read_param(param)
    names = [l.name for l in parsed.layers if l.type in ncnn_converter.QUANTIZABLE]
    kept = ncnn_converter.resolve_float_layers(parsed, ["first", "last"], "tiny")
    assert kept == {names[0], names[-1]}
    scales = ncnn_converter.calibrate(param, weights, _inputs([1, 3, 16, 16]), "minmax", 100, kept)
    ncnn_converter.write_int8(param, weights, scales, tmp_path / "k.ncnn.param", tmp_path / "k.ncnn.bin")
    assert ncnn_converter.int8_layers(tmp_path / "k.ncnn.param") == (names[1:-1], [names[0], names[-1]])
    with pytest.raises(UserInputError, match="--ncnn-float-layers: tiny has no .* 'conv9'"):
        ncnn_converter.resolve_float_layers(parsed, ["conv9"], "tiny")


def test_op_without_ncnn_layer_is_named_with_its_node(tiny_ncnn, tmp_path):
    import onnx

    path, _, _ = tiny_ncnn
    proto = onnx_converter.load(path)
    proto.graph.node.append(onnx.helper.make_node("Hardmax", [proto.graph.output[0].name], ["hard"], name="pick_one"))
    proto.graph.output[0].name = "hard"
    (tmp_path / "h").mkdir()
    with pytest.raises(ToolError, match="op Hardmax \\(node 'pick_one'\\) has no ncnn layer"):
        _to_ncnn(proto, tmp_path / "h", "hard")


def test_converter_crash_reports_exit_status_and_last_stderr_lines(tiny_ncnn, tmp_path, monkeypatch):
    crash = tmp_path / "pnnx"
    crash.write_text("#!/bin/sh\necho 'loading model' >&2\necho 'fatal: graph rewrite failed' >&2\nkill -SEGV $$\n")
    crash.chmod(crash.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("DEPLOY_PNNX", str(crash))
    path, _, _ = tiny_ncnn
    with pytest.raises(ToolError, match="pnnx failed on tiny.onnx \\(killed by signal 11\\): loading model \\| fatal: graph rewrite failed"):
        ncnn_converter.convert(path, [1, 3, 16, 16], False, tmp_path, "crash")


def test_requantize_only_where_every_consumer_is_an_int8_convolution(tmp_path):
    text = """7767517
7 8
Input                    in0                      0 1 in0
Convolution              a                        1 1 in0 1 0=4 1=1 6=12
Split                    s                        1 2 1 2 3
Convolution              b                        1 1 2 4 0=4 1=1 6=16
ConvolutionDepthWise     c                        1 1 3 5 0=4 1=3 6=36 7=4
Convolution              d                        1 1 4 6 0=4 1=1 6=16
Pooling                  p                        1 1 6 out0 0=1 4=1
"""
    (tmp_path / "m.param").write_text(text)
    param = ncnn_converter.read_param(tmp_path / "m.param")
    scales = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}
    assert ncnn_converter.requantize_scales(param, scales) == {"a": 2.0, "b": 4.0}
    # d feeds pooling (float); with c kept float, a's Split no longer leads only to int8 layers.
    assert ncnn_converter.requantize_scales(param, {"a": 1.0, "b": 2.0, "d": 4.0}) == {"b": 4.0}
