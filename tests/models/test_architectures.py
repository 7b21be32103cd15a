"""Built-in architectures: build, QAT, int8 conversion, MAC counting, ShuffleNet's block shuffle."""
import functools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from converters import tflite
from pipeline.models import architectures as arch
from pipeline.runtimes import litert
from pipeline.tf_import import keras

NAMES = sorted(arch.ARCHITECTURES)
SIZE = 32
CLASSES = 3


def _smallest_alpha(name):
    alphas = arch.ARCHITECTURES[name].alphas
    return min(alphas) if alphas else 0.25


# Building and quantizing cost seconds per model: do it once per architecture.
@functools.cache
def _float_model(name):
    return arch.build(name, SIZE, CLASSES, _smallest_alpha(name))


@functools.cache
def _qat_model(name):
    """The QAT stage's quantize_model, with its check that no Concatenate's inputs were reordered."""
    from pipeline.stages.qat import quantize

    return quantize(_float_model(name))


def test_import_does_not_load_tensorflow():
    code = "import sys, pipeline.models.architectures; print('tensorflow' in sys.modules)"
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_min_input_size_is_supported_by_every_architecture():
    # The tests below build at SIZE, so this is what proves each min_input_size works.
    assert all(a.min_input_size == SIZE for a in arch.ARCHITECTURES.values())


@pytest.mark.parametrize("name", NAMES)
def test_build_gives_softmax_over_classes(name):
    model = _float_model(name)
    assert model.name == name
    assert model.input_shape == (None, SIZE, SIZE, 3)
    assert model.output_shape == (None, CLASSES)
    probs = model(np.random.default_rng(0).normal(size=(2, SIZE, SIZE, 3)).astype("float32")).numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_quantize_model_accepts_it(name):
    qat = _qat_model(name)
    assert qat.output_shape == (None, CLASSES)
    assert any("quant" in layer.__class__.__name__.lower() for layer in qat.layers)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_qat_model_converts_to_full_int8(name, tmp_path):
    qat = _qat_model(name)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(8, SIZE, SIZE, 3)).astype("float32")
    y = rng.integers(0, CLASSES, size=8)
    # Eager: tracing a training graph for one batch costs more than the batch (3-8 s).
    qat.compile(optimizer="adam", loss="sparse_categorical_crossentropy", run_eagerly=True)
    qat.fit(x, y, batch_size=8, epochs=1, verbose=0)

    # The pipeline's own converter and int8 check, as `deploy build` runs them.
    path = tflite.write(tflite.convert(qat, "int8-qat", x), tmp_path / f"{name}.tflite")
    assert litert.float_compute_ops(path) == []


# --- count_macs ----------------------------------------------------------------------


def _macs_of(*layers):
    k = keras()
    inputs = k.Input((8, 8, 3))
    x = inputs
    for layer in layers:
        x = layer(x)
    return arch.count_macs(k.Model(inputs, x))


def test_count_macs_conv_and_dense():
    layers = keras().layers
    # Conv: 6*6 positions * 4 filters * 3*3*3 weights = 3888. Dense: 144 inputs * 10 = 1440.
    macs = _macs_of(layers.Conv2D(4, 3), layers.Flatten(), layers.Dense(10))
    assert macs == 6 * 6 * 4 * 27 + 144 * 10


def test_count_macs_depthwise_and_separable():
    layers = keras().layers
    # Depthwise, multiplier 2, same padding: 8*8 positions * 6 channels * 3*3 = 3456.
    assert _macs_of(layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)) == 8 * 8 * 6 * 9
    # Separable to 5 channels, valid: 6*6 * (3 * 9 depthwise + 3 * 5 pointwise).
    assert _macs_of(layers.SeparableConv2D(5, 3)) == 6 * 6 * (3 * 9 + 3 * 5)


def test_count_macs_sees_through_qat_wrappers():
    name = "squeezenet"
    assert arch.count_macs(_qat_model(name)) == arch.count_macs(_float_model(name)) > 0


# --- build errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(name="resnet50"), ["resnet50", "mobilenet_v2", "squeezenet"]),
        (dict(name="mobilenet_v2", alpha=0.3), ["0.3", "0.35", "1.4"]),
        (dict(name="shufflenet_v2", alpha=0.75), ["0.75", "0.5", "2.0"]),
        (dict(name="squeezenet", alpha=0.0), ["0.0", "positive"]),
        (dict(name="mobilenet_v1", input_size=31), ["31", "32"]),
        (dict(name="mobilenet_v1", num_classes=1), ["1", "2"]),
    ],
)
def test_build_rejects_bad_values(kwargs, words):
    args = dict(input_size=SIZE, num_classes=CLASSES) | kwargs
    with pytest.raises(ValueError) as err:
        arch.build(**args)
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message


# --- ShuffleNet block shuffle ---------------------------------------------------------


def _apply(fn, x):
    k = keras()
    inputs = k.Input(x.shape[1:])
    return k.Model(inputs, fn(inputs))(x).numpy()


def _known_tensor(channels=6):
    return np.arange(2 * 2 * 3 * channels, dtype="float32").reshape(2, 2, 3, channels)


@pytest.mark.parametrize("start, stop", [(0, 1), (1, 2), (2, 4), (0, 4)])
def test_channel_slice_takes_contiguous_parts(start, stop):
    x = _known_tensor(8)
    got = _apply(lambda t: arch._channel_slice(t, 4, start, stop, name="slice"), x)
    np.testing.assert_array_equal(got, x[..., 2 * start : 2 * stop])


def test_shuffle_unit_passes_quarters_around_its_branch():
    """Output [q3, q0, branch]: the kept quarters come through unchanged, in swapped places."""
    x = _known_tensor(8)
    got = _apply(lambda t: arch._shuffle_unit(t, name="unit"), x)
    assert got.shape == x.shape
    np.testing.assert_array_equal(got[..., :2], x[..., 6:])
    np.testing.assert_array_equal(got[..., 2:4], x[..., :2])


def test_every_shufflenet_width_splits_into_quarters():
    for channels in arch._SHUFFLENET_CHANNELS.values():
        assert all(c % 4 == 0 for c in channels[:-1]), channels
