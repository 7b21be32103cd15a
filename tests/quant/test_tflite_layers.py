"""Per-layer int8 error and the float fallback on a tiny model with one layer broken for int8 on purpose."""
import numpy as np
import pytest

from converters import tflite
from pipeline.quant import tflite_layers
from pipeline.quant.int8_decision import DecisionSet
from pipeline.runtimes import litert

SIZE, CLASSES = 16, 4


def _images(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Noisy images whose mean colour tells the class: a tiny conv net learns them in a few epochs."""
    labels = rng.integers(0, CLASSES, n)
    colours = np.array([[0.8, -0.6, -0.6], [-0.6, 0.8, -0.6], [-0.6, -0.6, 0.8], [0.2, 0.2, 0.2]])[labels]
    x = colours[:, None, None, :] + rng.normal(0, 0.5, (n, SIZE, SIZE, 3))
    return x.astype(np.float32), labels


@pytest.fixture(scope="module")
def sabotaged():
    """A trained conv net whose layer 'hard' int8 cannot represent, while its float output is unchanged:
    each of its output channels gets one huge weight on an input channel that is always 0 (conv1's
    channel 7, made dead). Per-channel int8 weights then take a step of 200/127, and every real weight
    of the layer rounds to 0."""
    from pipeline.tf_import import keras

    k = keras()
    k.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = _images(600, rng)
    inputs = k.Input((SIZE, SIZE, 3))
    h = k.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    h = k.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="hard")(h)
    h = k.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv3")(h)
    h = k.layers.GlobalAveragePooling2D()(h)
    # Named: tensor names start with the model's name, which Keras otherwise numbers per process.
    model = k.Model(inputs, k.layers.Dense(CLASSES, activation="softmax", name="fc")(h), name="model")
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x[:400], y[:400], epochs=5, verbose=0)
    w, b = model.get_layer("conv1").get_weights()
    w[..., 7], b[7] = 0.0, -1.0  # channel 7: ReLU(-1) = 0 on every image
    model.get_layer("conv1").set_weights([w, b])
    w, b = model.get_layer("hard").get_weights()
    w[1, 1, 7, :] = 200.0  # multiplies the dead channel: no effect in float
    model.get_layer("hard").set_weights([w, b])
    calibration, (held_out, labels) = x[:100], (x[400:], y[400:])
    plain = tflite.convert(model, "int8-ptq", calibration)
    return model, calibration, held_out, labels, plain


def _analyse(sabotaged, tmp_path, mode="auto", budget=0.5):
    model, calibration, held_out, labels, plain = sabotaged
    converter = tflite.make_converter(model, "int8-ptq", calibration)
    return tflite_layers.analyse(converter, plain, lambda x: model.predict(x, verbose=0), held_out, labels,
                                 np.ones(len(labels), bool), budget_points=budget, mode=mode, int8_io=False, scratch=tmp_path / "round.tflite")


@pytest.mark.slow
def test_the_broken_layer_comes_first_and_the_fallback_keeps_it_float(sabotaged, tmp_path):
    _, _, held_out, labels, plain = sabotaged
    found = _analyse(sabotaged, tmp_path)
    rows = found["layer_errors"]
    assert [set(r) for r in rows] == [{"layer", "op", "nrmse", "max_abs", "cosine"}] * len(rows)
    assert rows[0]["layer"].startswith("model/hard/") and rows[0]["op"] == "CONV_2D"
    assert [r["nrmse"] for r in rows] == sorted((r["nrmse"] for r in rows), reverse=True)
    assert rows[0]["nrmse"] > 10 * rows[1]["nrmse"]  # broken, not merely the worst of healthy layers
    assert rows[0]["cosine"] is not None and rows[0]["cosine"] < 0.9
    assert "tensor_name" in found["stats_csv"].splitlines()[0]  # the debugger's own statistics kept

    fallback = found["fallback"]
    assert fallback["top1_float"] - fallback["top1_int8"] > 0.2  # int8 really broke the model
    assert fallback["agreement_int8"] < 0.8 and fallback["decision_images"] == len(labels) == fallback["n"]
    assert fallback["top1_decides"]  # 200 never-fitted images: label top-1 counts
    assert fallback["status"] == "met"
    assert fallback["float_layers"] == [rows[0]["layer"]]
    assert 100 * (fallback["top1_float"] - fallback["top1_after"]) <= 0.5 and fallback["agreement_after"] >= 0.995
    assert [r["float_layers"] for r in fallback["rounds"]] == [[], [rows[0]["layer"]]]
    assert fallback["rounds"][1]["size_bytes"] == len(found["model"]) > len(plain)  # float weights cost bytes

    # The shipped model runs in LiteRT, scores what the fallback measured, and only the asked-for layer is float.
    shipped = tmp_path / "shipped.tflite"
    shipped.write_bytes(found["model"])
    assert np.mean(litert.predict(shipped, held_out).argmax(1) == labels) == fallback["top1_after"]
    left_float = litert.float_compute_ops(shipped)
    assert [op.split("#")[0] for op in left_float] == ["DEQUANTIZE", "CONV_2D", "QUANTIZE"]
    assert litert.float_compute_ops(shipped, fallback["float_layers"]) == []
    assert litert.float_compute_ops(shipped, ["model/conv3/Relu"]) == left_float  # another name excuses nothing


@pytest.mark.slow
def test_fallback_off_ships_the_plain_conversion(sabotaged, tmp_path):
    _, _, _, _, plain = sabotaged
    found = _analyse(sabotaged, tmp_path, mode="off")
    assert found["model"] == plain
    assert found["fallback"]["status"] == "off" and found["fallback"]["float_layers"] == []
    assert found["fallback"]["top1_after"] == found["fallback"]["top1_int8"]
    assert found["layer_errors"][0]["layer"].startswith("model/hard/")  # the diagnosis is still given


@pytest.mark.slow
def test_a_generous_budget_needs_no_fallback(sabotaged, tmp_path):
    _, _, _, _, plain = sabotaged
    found = _analyse(sabotaged, tmp_path, budget=100.0)
    assert found["fallback"]["status"] == "not-needed" and found["model"] == plain


@pytest.mark.slow
def test_fallback_keeps_int8_input_and_output(sabotaged, tmp_path):
    """--io int8: the model the deny list makes must keep int8 I/O, as the plain conversion has."""
    model, calibration, held_out, labels, _ = sabotaged
    plain = tflite.convert(model, "int8-ptq", calibration, int8_io=True)
    found = tflite_layers.analyse(tflite.make_converter(model, "int8-ptq", calibration, int8_io=True), plain,
                                  lambda x: model.predict(x, verbose=0), held_out, labels, np.ones(len(labels), bool),
                                  budget_points=0.5, mode="auto",
                                  int8_io=True, scratch=tmp_path / "round.tflite")
    assert found["fallback"]["status"] == "met"
    shipped = tmp_path / "shipped.tflite"
    shipped.write_bytes(found["model"])
    assert litert.io_types(shipped) == {"input": "int8", "output": "int8"}
    assert litert.float_compute_ops(shipped, found["fallback"]["float_layers"]) == []


@pytest.mark.slow
def test_over_budget_without_a_broken_layer_ships_the_plain_model(sabotaged, tmp_path):
    """Healthy layers (rounding-level nrmse) are never kept float: the loss is not theirs to buy back."""
    model, _, held_out, labels, plain = sabotaged
    healthy = [{"layer": "model/conv3/Relu", "op": "CONV_2D", "nrmse": 0.3, "max_abs": 0.1, "cosine": 0.999}]
    decision = DecisionSet.of(model.predict(held_out, verbose=0), labels, np.ones(len(labels), bool))
    record, shipped = tflite_layers.fallback(None, plain, healthy, decision, held_out, budget_points=0.5,
                                             mode="auto", int8_io=False, scratch=tmp_path / "round.tflite")
    assert record["top1_float"] - record["top1_int8"] > 0.2  # over budget
    assert record["status"] == "no-broken-layer" and record["float_layers"] == [] and shipped == plain
