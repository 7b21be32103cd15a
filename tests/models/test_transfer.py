"""--pretrained (models/transfer.py): the backbone's weights come from the file, the head is new, the
first phase trains the head alone, a file of another family names the first layer that does not
fit, and `imagenet` reads Keras's cache and downloads nothing."""
import numpy as np
import pytest

from pipeline.errors import UserInputError
from pipeline.models import architectures, transfer


def _model(name: str, classes: int, seed: int):
    from pipeline.tf_import import keras

    keras().utils.set_random_seed(seed)
    return architectures.build(name, 32, classes, 0.35 if name == "mobilenet_v2" else 0.5)


def test_the_backbone_is_copied_and_only_the_head_is_new():
    source, target = _model("mobilenet_v2", 3, 0), _model("mobilenet_v2", 5, 1)
    copied = transfer.copy_backbone(source, target, "file.keras")
    weighted = [layer for layer in target.layers if layer.weights]
    assert copied == len(weighted) - 1 and transfer.head(target) == "predictions"
    for layer in weighted[:-1]:
        for mine, theirs in zip(layer.get_weights(), source.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(mine, theirs)
    assert target.get_layer("predictions").get_weights()[0].shape[-1] == 5


def test_the_first_phase_trains_the_head_alone_and_batchnorm_stays_frozen():
    from pipeline.tf_import import keras

    model = _model("mobilenet_v2", 3, 0)
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in model.layers if layer.weights}
    transfer.freeze(model, backbone=True)
    rng = np.random.default_rng(0)
    model.compile(keras().optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(rng.normal(size=(16, 32, 32, 3)).astype(np.float32), rng.integers(0, 3, 16), epochs=1, batch_size=8, verbose=0)
    changed = {name for name, weights in before.items()
               if any(not np.array_equal(a, b) for a, b in zip(weights, model.get_layer(name).get_weights()))}
    assert changed == {"predictions"}  # BN moving statistics included: inference mode
    transfer.freeze(model, backbone=False)
    assert model.get_layer("Conv1").trainable and model.get_layer("bn_Conv1").trainable  # batch statistics adapt


def test_a_file_of_another_family_names_the_first_layer_that_does_not_fit():
    with pytest.raises(UserInputError, match=r"--pretrained sq.keras: layer 'Conv1' \(Conv2D\) of the built-in model is not in it"):
        transfer.copy_backbone(_model("squeezenet", 3, 0), _model("mobilenet_v2", 3, 0), "sq.keras")
    wider = architectures.build("mobilenet_v2", 32, 3, 0.5)
    with pytest.raises(UserInputError, match=r"layer 'block_1_project' \(Conv2D\) has weights of shapes \[\(1, 1, 48, 16\)\], "
                                             r"the built-in model's are \[\(1, 1, 48, 8\)\] \(another --alpha\?\)"):
        transfer.copy_backbone(wider, _model("mobilenet_v2", 3, 0), "wide.keras")


def test_imagenet_reads_keras_cache_and_names_the_missing_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    folder = tmp_path / ".keras" / "models"
    with pytest.raises(UserInputError) as raised:
        transfer.imagenet_file("mobilenet_v2", 96, 0.35)
    assert str(raised.value) == (f"--pretrained imagenet: mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5 is "
                                 f"not in {folder} and a build downloads nothing; put the file there (keras.applications "
                                 "downloads it on a machine that is online)")
    folder.mkdir(parents=True)
    (folder / "mobilenet_5_0_128_tf_no_top.h5").write_bytes(b"x")
    assert transfer.imagenet_file("mobilenet_v1", 128, 0.5) == folder / "mobilenet_5_0_128_tf_no_top.h5"
    with pytest.raises(UserInputError, match=r"exist for --input-size 96/128/160/192/224 and --alpha .*, not 32 and 0.35"):
        transfer.imagenet_file("mobilenet_v2", 32, 0.35)
    with pytest.raises(UserInputError, match="not squeezenet"):
        transfer.imagenet_file("squeezenet", 128, 1.0)


def test_pretrained_imagenet_offline_is_a_one_line_error_and_exit_2(tmp_path, image_folder):
    import os
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "build", "--model", "mobilenet_v2", "--data", str(image_folder),
                           "--input-size", "96", "--alpha", "0.35", "--pretrained", "imagenet", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, env={**os.environ, "HOME": str(tmp_path)})
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.count("\n") == 1 and "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5 is not in" in done.stderr


@pytest.mark.slow
def test_a_build_from_a_pretrained_file_records_it(tmp_path, image_folder):
    from pipeline.build import build
    from pipeline.config import load_config

    source = _model("squeezenet", 7, 0)
    source.save(tmp_path / "backbone.keras")
    report = build(load_config(overrides={
        "models": ["squeezenet"], "data": str(image_folder), "out": tmp_path / "out", "alpha": 0.5, "input_size": 32,
        "pretrained": str(tmp_path / "backbone.keras"), "epochs": 3, "formats": ["tflite"], "precisions": ["fp32"],
        "warmup": 1, "runs": 3, "threads": [1], "val_fraction": 0.25}))
    pretrained = report.models[0].pretrained
    assert pretrained.weights == str(tmp_path / "backbone.keras") and pretrained.head_epochs == 1
    assert pretrained.fine_tune_epochs == 2 and pretrained.layers_copied == len([l for l in source.layers if l.weights]) - 1
    with pytest.raises(UserInputError, match="--pretrained: --model .* is a trained model already"):
        build(load_config(overrides={"models": [str(tmp_path / "backbone.keras")], "data": str(image_folder),
                                     "out": tmp_path / "out2", "pretrained": "imagenet"}))


def test_dry_run_shows_the_training_recipe(tmp_path, image_folder):
    from pipeline.build import dry_run
    from pipeline.config import load_config

    _model("squeezenet", 3, 0).save(tmp_path / "backbone.keras")
    lines = dry_run(load_config(overrides={
        "models": ["squeezenet"], "data": str(image_folder), "out": tmp_path / "out", "alpha": 0.5, "input_size": 32,
        "pretrained": str(tmp_path / "backbone.keras"), "epochs": 5, "learning_rate": 0.01, "formats": ["tflite"],
        "precisions": ["fp32", "int8-qat"]}))
    train = next(line for line in lines if " train " in line)
    assert (f"from {tmp_path / 'backbone.keras'}: head alone 1 epoch at 0.01, then all layers 4 epochs at 0.003; "
            "5 epochs, learning rate 0.01, batch 64, augment affine") in train
    qat = next(line for line in lines if " qat " in line)
    assert "distilled (T 4, soft-target weight 0.7); 3 epochs, learning rate 0.0001" in qat
