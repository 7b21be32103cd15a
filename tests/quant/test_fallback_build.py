"""The fallback inside `deploy build`: the convert stage ships the layer it kept float, verify accepts
it as asked for, report.json records the decision, and `deploy explain` prints it."""
import json

import numpy as np
import pytest

from pipeline.explain import explain
from tests.conftest import make_image_folder

SIZE = 16


@pytest.fixture(scope="module")
def sabotaged_run(tmp_path_factory):
    """A model trained on the colour folder, then given a layer int8 breaks (as in test_tflite_layers), built."""
    from pipeline.build import build
    from pipeline.config import load_config
    from pipeline.data import load_image_folder
    from pipeline.tf_import import keras

    root = tmp_path_factory.mktemp("fallback")
    folder = make_image_folder(root / "colors", per_class=100)  # a few hundred: the decision set is 205 images
    images = load_image_folder(folder, SIZE, SIZE)
    x = (images.images.astype(np.float32) - 127.5) / 127.5
    k = keras()
    k.utils.set_random_seed(0)
    inputs = k.Input((SIZE, SIZE, 3))
    h = k.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    h = k.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="hard")(h)
    h = k.layers.GlobalAveragePooling2D()(h)
    model = k.Model(inputs, k.layers.Dense(3, activation="softmax", name="fc")(h), name="sabotaged")
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, images.labels, epochs=20, batch_size=8, verbose=0)
    w, b = model.get_layer("conv1").get_weights()
    w[..., 7], b[7] = 0.0, -1.0  # a dead channel ...
    model.get_layer("conv1").set_weights([w, b])
    w, b = model.get_layer("hard").get_weights()
    w[1, 1, 7, :] = 200.0  # ... carrying a weight that leaves per-channel int8 a step of 1.6
    model.get_layer("hard").set_weights([w, b])
    path = root / "sabotaged.keras"
    model.save(path)
    out = root / "run"
    build(load_config(overrides={
        "models": [str(path)], "data": str(folder), "out": out, "formats": ["tflite"], "precisions": ["fp32", "int8-ptq"],
        "calibration_images": 20, "val_fraction": 0.25, "threads": [1], "runs": 3, "warmup": 1,
    }))
    return out


@pytest.mark.slow
def test_build_ships_the_fallback_and_verify_accepts_it(sabotaged_run):
    report = json.loads((sabotaged_run / "report.json").read_text())
    assert report["schema_version"] == "1.12"
    fp32, int8 = (next(a for a in report["artifacts"] if a["precision"] == p) for p in ("fp32", "int8-ptq"))
    worst = int8["layer_errors"][0]["layer"]
    assert worst.startswith("sabotaged/hard/")
    fallback = int8["fallback"]
    assert fallback["status"] == "met" and fallback["float_layers"] == [worst]
    # Decided on agreement over every training image calibration did not use (225 - 20): early
    # stopping's hold-out among them is too small for label top-1 to decide (fewer than 100).
    assert fallback["decision_images"] == 205 and fallback["n"] < 100 and fallback["top1_decides"] is False
    assert fallback["agreement_int8"] < 0.8 and fallback["agreement_after"] >= 0.99
    assert int8["int8_check"] == {"fully_int8": True, "float_ops": []}  # the float conv was asked for
    assert abs(int8["accuracy"]["top1"] - fp32["accuracy"]["top1"]) <= 0.05  # on the validation split too
    recipe = json.loads((sabotaged_run / int8["metadata_path"]).read_text())
    assert recipe["float_layers_requested"] == [worst]  # the recipe names the float layers
    lines = explain(f"{sabotaged_run}:{int8['model']}/{int8['id']}")
    assert "met the 1-point budget with 1 layer(s) in float: sabotaged/hard/Relu" in "\n".join(lines)
