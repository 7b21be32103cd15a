"""Keras 3 MobileNetV3 through ncnn (issue 27). Its include_preprocessing Rescaling becomes a scalar
BinaryOp, an in-place layer, right on the input blob; ncnn's light-mode forward then dereferences
the NULL refcount of an input Mat made on numpy memory and the process dies. ncnn runs in a child
process here, so a crash fails the test instead of killing pytest."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from converters import ncnn as ncnn_converter
from converters import onnx as onnx_converter

REPO = Path(__file__).resolve().parents[2]
CHILD = """
import sys, numpy as np
from pathlib import Path
from pipeline.runtimes import ncnn as ncnn_runtime
param, weights, inputs, outputs, precision = sys.argv[1:]
np.save(outputs, ncnn_runtime.predict(Path(param), Path(weights), np.load(inputs), precision))
"""


def _ncnn_predict(param: Path, weights: Path, x_nchw: np.ndarray, precision: str = "fp32") -> np.ndarray:
    """ncnn_runtime.predict (an input Mat on numpy memory, light mode) in a child process."""
    inputs, outputs = param.with_suffix(".in.npy"), param.with_suffix(".out.npy")
    np.save(inputs, np.ascontiguousarray(x_nchw, np.float32))
    proc = subprocess.run([sys.executable, "-c", CHILD, str(param), str(weights), str(inputs), str(outputs), precision],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"ncnn died on {param.name} (exit {proc.returncode}): {proc.stderr[-500:]}"
    return np.load(outputs)


def _readers_of_input(param: Path) -> list[ncnn_converter.ParamLayer]:
    return [l for l in ncnn_converter.read_param(param).layers if "in0" in l.bottoms]


def _mnv3_blocks(size: int = 16):
    """MobileNetV3Small's patterns as keras.applications writes them (Keras 3): Rescaling,
    convolution + BatchNorm + hard_swish, a squeeze-excite (pooling, 1x1 convolutions,
    ReLU(6)(x + 3) / 6, Multiply) and a dense head (logits, to compare in detail)."""
    from pipeline.tf_import import tensorflow

    tensorflow()
    import keras  # Keras 3, as keras.applications.MobileNetV3Small is

    keras.utils.set_random_seed(0)
    layers = keras.layers
    inputs = keras.Input((size, size, 3))
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    x = layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("hard_swish")(x)
    se = layers.GlobalAveragePooling2D(keepdims=True)(x)
    se = layers.ReLU()(layers.Conv2D(4, 1, padding="same")(se))
    se = layers.Conv2D(8, 1, padding="same")(se)
    se = layers.ReLU(6.0)(se + 3.0) * (1.0 / 6.0)
    x = layers.Multiply()([x, se])
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("hard_swish")(x)
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, layers.Dense(3)(x), name="mnv3_blocks")
    rng = np.random.default_rng(0)
    # Trained-looking statistics and biases: TensorFlow folds zero ones away before tf2onnx, whose
    # transpose optimizer then fails on a scalar Add after a Conv without bias (hard_sigmoid's + 3).
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.5, beta.shape),
                               rng.normal(0, 0.5, mean.shape), rng.uniform(0.5, 2, var.shape)])
        elif isinstance(layer, layers.Conv2D) and layer.use_bias:
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0, 0.5, bias.shape)])
    return model


@pytest.mark.slow
def test_mnv3_blocks_run_in_ncnn_fp32_and_int8_like_keras(tmp_path):
    model = _mnv3_blocks()
    proto = ncnn_converter.prepare_for_pnnx(onnx_converter.load(onnx_converter.from_keras(model, tmp_path / "m.onnx")))
    path = onnx_converter.save(proto, tmp_path / "fixed.onnx")
    param, weights = ncnn_converter.convert(path, onnx_converter.signature(proto, path, None).input_shape, False, tmp_path, "m")
    x = np.random.default_rng(0).uniform(0, 255, (40, 16, 16, 3)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    x_nchw = x.transpose(0, 3, 1, 2)
    fp32 = _ncnn_predict(param, weights, x_nchw)
    assert np.abs(fp32 - expected).max() < 1e-4 * max(1.0, np.abs(expected).max())
    # The Rescaling's multiply reads the input as a two-operand BinaryOp (not in place).
    [first] = _readers_of_input(param)
    assert first.type == "BinaryOp" and len(first.bottoms) == 2 and "1" not in first.params
    scales = ncnn_converter.calibrate(param, weights, x_nchw[:24], "mse", 99.99, set())  # the build's default
    q_param, q_bin = tmp_path / "q.ncnn.param", tmp_path / "q.ncnn.bin"
    assert ncnn_converter.write_int8(param, weights, scales, q_param, q_bin)
    int8 = _ncnn_predict(q_param, q_bin, x_nchw[24:], "int8")
    spread = expected[24:].max() - expected[24:].min()
    assert 0 < np.abs(int8 - expected[24:]).max() < 0.1 * spread  # int8 arithmetic: close, not identical
    assert (int8.argmax(1) == expected[24:].argmax(1)).mean() >= 0.75


def _write(folder: Path, layers: list[str], weights: np.ndarray) -> tuple[Path, Path]:
    param, bin_path = folder / "net.ncnn.param", folder / "net.ncnn.bin"
    blobs = {layer.split()[4 + int(layer.split()[2]) + i] for layer in layers for i in range(int(layer.split()[3]))}
    param.write_text("\n".join(["7767517", f"{len(layers)} {len(blobs)}", *layers]) + "\n")
    bin_path.write_bytes(weights.astype("<f4").tobytes())
    return param, bin_path


def test_in_place_layers_on_the_input_get_their_own_copy(tmp_path):
    """A scalar BinaryOp on the input becomes two-operand; a ReLU behind a Split of the input gets
    a copy (x + 0) in front; a convolution (not in place) and the .bin's weights stay as they were."""
    kernel = np.arange(1, 7, dtype=np.float32) / 10  # 2 output channels x 3 input channels, 1x1
    param, bin_path = _write(tmp_path, [
        "Input in0 0 1 in0 0=4 1=4 2=3",
        "Split sp 1 3 in0 a b c",
        "BinaryOp scale 1 1 a s 0=2 1=1 2=0.5",
        "ReLU relu 1 1 b r",
        "Convolution conv 1 1 c k 0=2 1=1 5=0 6=6",
        "Concat cat 3 1 s r k out0 0=0",
    ], np.concatenate([[0], kernel]))  # the convolution's weights: a raw-float tag, then the kernel
    assert ncnn_converter.own_input_before_inplace(param, bin_path) == ["scale", "relu"]
    layers = {l.name: l for l in ncnn_converter.read_param(param).layers}
    assert layers["scale"].bottoms[0] == "a" and len(layers["scale"].bottoms) == 2 and "1" not in layers["scale"].params
    [copy] = [l for l in layers.values() if l.tops == layers["relu"].bottoms]
    assert copy.type == "BinaryOp" and copy.bottoms[0] == "b" and len(copy.bottoms) == 2
    assert layers["conv"].bottoms == ["c"]
    assert ncnn_converter.own_input_before_inplace(param, bin_path) == []  # nothing left to change
    x = np.random.default_rng(0).uniform(-1, 1, (3, 3, 4, 4)).astype(np.float32)
    out = _ncnn_predict(param, bin_path, x).reshape(3, 8, 4, 4)
    conv = np.einsum("oc,nchw->nohw", kernel.reshape(2, 3), x)
    assert np.abs(out - np.concatenate([x * 0.5, np.maximum(x, 0), conv], axis=1)).max() < 1e-6


def test_graph_without_in_place_layers_on_the_input_is_unchanged(tmp_path):
    param, bin_path = _write(tmp_path, [
        "Input in0 0 1 in0 0=4 1=4 2=3",
        "Convolution conv 1 1 in0 k 0=2 1=1 5=0 6=6",
        "ReLU relu 1 1 k out0",
    ], np.zeros(7))
    before = (param.read_text(), bin_path.read_bytes())
    assert ncnn_converter.own_input_before_inplace(param, bin_path) == []
    assert (param.read_text(), bin_path.read_bytes()) == before
