"""Layer patterns users write that tfmot's registry refuses: a BatchNormalization it cannot fold
rewritten into a layer it quantizes (exact in float), a squeeze-excite Multiply given tfmot's
output QuantizeConfig; either way the QAT artifact is fully int8."""
import numpy as np
import pytest

from pipeline.quant.qat_rewrites import batchnorms_to_rewrite, rewrite_for_qat
from tests.conftest import make_image_folder


def conv_relu_bn(size: int = 16, classes: int = 3):
    """Conv2D(activation='relu') then BatchNormalization, as tutorials write it; a BN after pooling;
    and one BN tfmot folds itself (after a linear Conv2D), which is left alone."""
    from pipeline.tf_import import keras

    k = keras()
    return k.Sequential([
        k.Input((size, size, 3)),
        k.layers.Conv2D(8, 3, activation="relu", padding="same", name="conv_relu"), k.layers.BatchNormalization(name="bn_after_relu"),
        k.layers.MaxPooling2D(name="pool"), k.layers.BatchNormalization(name="bn_after_pool"),
        k.layers.Conv2D(8, 3, name="conv_linear"), k.layers.BatchNormalization(name="bn_folded"), k.layers.ReLU(),
        k.layers.GlobalAveragePooling2D(), k.layers.Dense(classes, activation="softmax"),
    ])


def _trained(model, x, y):
    from pipeline.tf_import import keras

    keras().utils.set_random_seed(0)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=3, batch_size=16, verbose=0)  # moving statistics away from 0 and 1
    return model


def _int8_qat_artifact(qat, x, path):
    """The int8-qat .tflite of a QAT model (ranges from `x`), written to `path`."""
    from converters import tflite
    from pipeline.tf_import import tensorflow

    return tflite.write(tflite.convert(qat, "int8-qat", x, False, function=tflite.trace(tensorflow(), qat)), path)


def _assert_reloads(qat, x, path):
    """The QAT model saved as .h5 loads back (in the project's quantize_scope) and computes the same."""
    from pipeline.compress.common import quantize_scope
    from pipeline.tf_import import keras

    with quantize_scope():
        qat.save(path)
        reloaded = keras().models.load_model(path, compile=False)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), qat.predict(x, verbose=0), atol=1e-6)


def test_only_the_batchnorms_tfmot_cannot_fold_are_rewritten():
    assert batchnorms_to_rewrite(conv_relu_bn()) == ["bn_after_relu", "bn_after_pool"]


def test_the_rewrite_is_exact_in_float_and_quantizes_to_a_fully_int8_model(tmp_path):
    from pipeline.runtimes import litert
    from pipeline.tf_import import tfmot

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 16, 16, 3)).astype(np.float32), rng.integers(0, 3, 64)
    model = _trained(conv_relu_bn(), x, y)
    with pytest.raises(Exception, match="bn_after_relu"):
        tfmot().quantization.keras.quantize_model(model)
    rewritten, names = rewrite_for_qat(model)
    assert names == ["bn_after_relu", "bn_after_pool"]
    assert [type(rewritten.get_layer(n)).__name__ for n in names] == ["DepthwiseConv2D"] * 2
    assert np.abs(model.predict(x, verbose=0) - rewritten.predict(x, verbose=0)).max() < 1e-5
    qat = tfmot().quantization.keras.quantize_model(rewritten)
    assert litert.float_compute_ops(_int8_qat_artifact(qat, x[:16], tmp_path / "m.tflite")) == []
    assert rewrite_for_qat(rewritten)[1] == []  # nothing left to rewrite: the model itself comes back


@pytest.mark.slow
def test_a_conv_relu_bn_user_model_builds_with_require_qat(tmp_path):
    from pipeline.build import build
    from pipeline.config import load_config
    from pipeline.data import load_image_folder

    folder = make_image_folder(tmp_path / "data", per_class=16)
    images = load_image_folder(folder, 16, 16)
    x = (images.images.astype(np.float32) - 127.5) / 127.5
    model = _trained(conv_relu_bn(), x, images.labels)
    model.fit(x, images.labels, epochs=20, batch_size=8, verbose=0)
    model.save(tmp_path / "cnn.keras")
    report = build(load_config(overrides={
        "models": [str(tmp_path / "cnn.keras")], "data": str(folder), "out": tmp_path / "out", "require_qat": True,
        "formats": ["tflite"], "precisions": ["fp32", "int8-qat"], "qat_epochs": 2, "calibration_images": 16,
        "warmup": 1, "runs": 3, "threads": [1], "val_fraction": 0.25}))
    assert report.models[0].qat.status == "ok"
    qat = next(a for a in report.artifacts if a.precision == "int8-qat")
    assert qat.int8_check.fully_int8 and qat.accuracy.agreement >= 0.9, qat


def test_a_sequential_model_passes_the_concatenate_order_check():
    # A Sequential model's config names its layers under "config": the check read a missing key and
    # every Sequential user model was reported as "cannot be quantized".
    from pipeline.compress.common import quantize_with_scheme
    from pipeline.tf_import import keras

    k = keras()
    model = k.Sequential([k.Input((8, 8, 3)), k.layers.Conv2D(4, 3), k.layers.BatchNormalization(), k.layers.ReLU(),
                          k.layers.GlobalAveragePooling2D(), k.layers.Dense(2, activation="softmax")])
    assert type(quantize_with_scheme(model, "default")).__name__ in ("Sequential", "Functional")


def squeeze_excite(size: int = 16, classes: int = 3):
    """A squeeze-excite block as MobileNetV3 and EfficientNet have it: the feature map times sigmoid
    channel weights (Multiply, which tfmot's registry refuses)."""
    from pipeline.tf_import import keras

    k = keras()
    inputs = k.Input((size, size, 3))
    x = k.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = k.layers.BatchNormalization()(x)
    x = k.layers.ReLU()(x)
    s = k.layers.GlobalAveragePooling2D(keepdims=True)(x)
    s = k.layers.Conv2D(4, 1, activation="relu")(s)
    s = k.layers.Conv2D(8, 1, activation="sigmoid")(s)
    x = k.layers.Multiply(name="se_excite")([x, s])
    x = k.layers.GlobalAveragePooling2D()(x)
    return k.Model(inputs, k.layers.Dense(classes, activation="softmax")(x))


def test_a_squeeze_excite_multiply_quantizes_to_int8_and_the_qat_model_reloads(tmp_path):
    from pipeline.compress.common import quantize_with_scheme
    from pipeline.runtimes import litert

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 16, 16, 3)).astype(np.float32), rng.integers(0, 3, 32)
    model = _trained(squeeze_excite(), x, y)
    qat = quantize_with_scheme(model, "default")
    assert type(qat.get_layer("quant_se_excite").quantize_config).__name__ == "Default8BitOutputQuantizeConfig"
    assert np.abs(qat.predict(x, verbose=0) - model.predict(x, verbose=0)).max() < 0.2  # fake-quant, not another model
    _assert_reloads(qat, x, tmp_path / "qat.h5")
    path = _int8_qat_artifact(qat, x[:8], tmp_path / "se.tflite")
    assert litert.float_compute_ops(path) == [] and "MUL" in {op["op_name"] for op in _ops(path)}


def _ops(path):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(path))._get_ops_details()


def keras3_hard_swish_block(size: int = 16, classes: int = 3):
    """MobileNetV3's pieces as Keras 3 writes them: Activation("hard_silu") after a BatchNormalization,
    a squeeze-excite whose hard sigmoid is the operations `relu6(x + 3.0) * (1 / 6)`, and a
    Conv2D(activation="hard_silu")."""
    import keras

    layers = keras.layers
    inputs = keras.Input((size, size, 3))
    x = layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = layers.Conv2D(8, 3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("hard_silu")(x)
    s = layers.GlobalAveragePooling2D(keepdims=True)(x)
    s = layers.Conv2D(4, 1, activation="relu")(s)
    s = layers.Conv2D(8, 1)(s)
    s = layers.ReLU(6.0)(s + 3.0) * (1.0 / 6.0)
    x = layers.Multiply(name="se_excite")([x, s])
    x = layers.Conv2D(8, 1, activation="hard_silu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(classes, activation="softmax")(x))


def test_keras3_hard_silu_and_constant_operations_twin_exactly_and_quantize_to_int8(tmp_path):
    import keras

    from pipeline.compress.common import quantize_with_scheme
    from pipeline.models import keras3_twin
    from pipeline.runtimes import litert

    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 255, size=(32, 16, 16, 3)).astype(np.float32), rng.integers(0, 3, 32)
    keras.utils.set_random_seed(0)
    model = keras3_hard_swish_block()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    twin = keras3_twin.build_twin(model)
    kinds = [type(layer).__name__ for layer in twin.model.layers]
    assert kinds.count("HardSwish") == 2 and kinds.count("Affine") == 2 and "Activation" not in kinds[:-1]
    assert keras3_twin.max_abs_diff(model, twin, x) < 1e-5
    qat = quantize_with_scheme(twin.model, "default")
    prepared = keras3_twin.twin_input(twin, x)
    _assert_reloads(qat, prepared, tmp_path / "qat.h5")
    path = _int8_qat_artifact(qat, prepared[:8], tmp_path / "hs.tflite")
    assert litert.float_compute_ops(path) == []
    assert "HARD_SWISH" in {op["op_name"] for op in _ops(path)}  # the converter fused x * relu6(x + 3) / 6


def test_a_batchnorm_on_features_folds_into_a_dense_and_quantizes_to_int8(tmp_path):
    """Dense(use_bias=False) -> BN -> ReLU folds backward; Dense(relu) -> BN -> Dropout -> Dense forward."""
    from pipeline.quant.qat_rewrites import dense_folds
    from pipeline.runtimes import litert
    from pipeline.tf_import import keras, tfmot

    k = keras()
    inputs = k.Input((8, 8, 3))
    h = k.layers.Conv2D(8, 3, activation="relu")(inputs)
    h = k.layers.GlobalAveragePooling2D()(h)
    h = k.layers.Dense(16, use_bias=False, name="fc1")(h)
    h = k.layers.BatchNormalization(name="bn_before_relu")(h)
    h = k.layers.ReLU()(h)
    h = k.layers.Dense(16, activation="relu", name="fc2")(h)
    h = k.layers.BatchNormalization(name="bn_after_relu")(h)
    h = k.layers.Dropout(0.2)(h)
    model = k.Model(inputs, k.layers.Dense(3, activation="softmax", name="head")(h))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 8, 8, 3)).astype(np.float32), rng.integers(0, 3, 64)
    model = _trained(model, x, y)
    assert dense_folds(model) == {"bn_before_relu": ("before", "fc1"), "bn_after_relu": ("after", "head")}
    rewritten, names = rewrite_for_qat(model)
    assert names == ["bn_before_relu", "bn_after_relu"]
    assert np.abs(model.predict(x, verbose=0) - rewritten.predict(x, verbose=0)).max() < 1e-5
    qat = tfmot().quantization.keras.quantize_model(rewritten)
    assert litert.float_compute_ops(_int8_qat_artifact(qat, x[:16], tmp_path / "m.tflite")) == []


def test_a_rescaling_inside_a_keras3_model_twins_as_layers_qat_quantizes(tmp_path):
    """A Rescaling that is not at the input (after a Conv2D) and a Normalization after it."""
    import keras

    from pipeline.compress.common import quantize_with_scheme
    from pipeline.models import keras3_twin
    from pipeline.runtimes import litert

    inputs = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    h = keras.layers.Rescaling(0.5, offset=-1.0, name="inner_rescaling")(h)
    h = keras.layers.Normalization(mean=[0.1, 0.2, 0.3, 0.4], variance=[1.0, 2.0, 3.0, 4.0], name="inner_norm")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(h))
    x = np.random.default_rng(0).normal(size=(16, 8, 8, 3)).astype(np.float32)
    twin = keras3_twin.build_twin(model)
    assert twin.folded == []  # not at the input: kept in the model
    assert [type(twin.model.get_layer(n)).__name__ for n in ("inner_rescaling_scale", "inner_norm_offset")] == ["Affine"] * 2
    assert keras3_twin.max_abs_diff(model, twin, x) < 1e-5
    qat = quantize_with_scheme(twin.model, "default")
    assert litert.float_compute_ops(_int8_qat_artifact(qat, x[:8], tmp_path / "m.tflite")) == []


def test_separable_conv2d_quantizes_to_a_fully_int8_model(tmp_path):
    """tfmot splits a SeparableConv2D into a DepthwiseConv2D and a 1x1 Conv2D itself: nothing of ours."""
    from pipeline.compress.common import quantize_with_scheme
    from pipeline.runtimes import litert
    from pipeline.tf_import import keras

    k = keras()
    model = k.Sequential([k.Input((16, 16, 3)), k.layers.SeparableConv2D(8, 3, padding="same"), k.layers.BatchNormalization(),
                          k.layers.ReLU(), k.layers.SeparableConv2D(8, 3, activation="relu"), k.layers.GlobalAveragePooling2D(),
                          k.layers.Dense(3, activation="softmax")])
    x = np.random.default_rng(0).normal(size=(32, 16, 16, 3)).astype(np.float32)
    qat = quantize_with_scheme(model, "default")
    assert np.abs(qat.predict(x, verbose=0) - model.predict(x, verbose=0)).max() < 0.1
    path = _int8_qat_artifact(qat, x[:8], tmp_path / "sep.tflite")
    assert litert.float_compute_ops(path) == [] and "DEPTHWISE_CONV_2D" in {op["op_name"] for op in _ops(path)}
