"""Training and evaluation read the store in batches: same results as whole arrays, augmentation on training only."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline import datastore
from pipeline.data import Preprocessing
from pipeline.runner import Runner
from pipeline.stages import data as data_stage
from pipeline.stages.data import DataConfig, DataStage
from tests.conftest import make_image_folder, tiny_model

PREP = Preprocessing(32, 32, "RGB", (127.5, 127.5, 127.5), (127.5, 127.5, 127.5))


@pytest.fixture(scope="module")
def data_out(tmp_path_factory):
    root = make_image_folder(tmp_path_factory.mktemp("d") / "colors", per_class=10)
    out = tmp_path_factory.mktemp("out")
    return Runner(out).run(DataStage(), DataConfig(source=str(root), height=32, width=32, val_fraction=0.3, seed=0))


@pytest.mark.slow
def test_batched_prediction_equals_a_whole_array_pass(data_out):
    from pipeline.models import training

    model = tiny_model(size=32)
    val = data_stage.open_split(data_out, "val")
    images, labels = val.read(np.arange(len(val)))
    whole = training.predict(model, PREP.apply(images))
    batched = data_stage.predict_split(lambda x: training.predict(model, x), val, PREP, "test", batch_size=4)
    assert batched.shape == whole.shape and np.allclose(batched, whole, atol=1e-6)
    assert np.array_equal(batched.argmax(1), whole.argmax(1))
    assert np.mean(batched.argmax(1) == labels) == np.mean(whole.argmax(1) == labels)


def _epoch(dataset):
    return [(x.numpy(), y.numpy()) for x, y in dataset.take(len(dataset))]


@pytest.mark.slow
def test_training_batches_come_from_the_training_split_only(data_out, monkeypatch):
    from pipeline.models import training

    read = []
    original = datastore.ImageStore.read
    monkeypatch.setattr(datastore.ImageStore, "read", lambda self, rows: (read.extend(rows), original(self, rows))[1])
    train, val = data_stage.open_split(data_out, "train"), data_stage.open_split(data_out, "val")
    dataset = training.training_dataset(train, PREP, batch_size=4, seed=0, augment="basic")
    batches = _epoch(dataset)
    assert sorted(read) == sorted(train.rows) and set(read).isdisjoint(val.rows)
    assert sum(len(y) for _, y in batches) == len(train)


@pytest.mark.slow
@pytest.mark.parametrize("augment", ["basic", "affine"])
def test_augmentation_is_seeded_and_none_is_the_plain_preprocessing(data_out, augment):
    from pipeline.models import training

    train = data_stage.open_split(data_out, "train")
    make = lambda augment, seed: training.training_dataset(train, PREP, batch_size=8, seed=seed, augment=augment)  # noqa: E731
    plain, changed, again, other = _epoch(make("none", 0)), _epoch(make(augment, 0)), _epoch(make(augment, 0)), _epoch(make(augment, 1))
    for (x, y), (xb, yb), (xa, _), (xo, _) in zip(plain, changed, again, other):
        assert np.array_equal(y, yb) and xb.shape == x.shape
        assert np.array_equal(xb, xa) and not np.allclose(xb, x)
    # "none" is exactly Preprocessing.apply of the stored images, in the epoch's seeded order.
    order = np.sort(np.random.default_rng([0, 0]).permutation(len(train))[:8])
    assert np.array_equal(plain[0][0], PREP.apply(train.read(order)[0]))
    assert not all(np.allclose(a[0], b[0]) for a, b in zip(changed, other))
    assert len(other) == len(changed)


def test_affine_moves_rotates_and_scales_about_the_centre_and_identity_changes_nothing():
    from pipeline.augment import affine
    from pipeline.tf_import import tensorflow

    tf = tensorflow()
    image = np.zeros((1, 9, 9, 1), np.float32)
    image[0, 4, 6, 0] = 1.0  # x 6, y 4: two pixels right of the centre

    def moved(angle, scale, shift):
        out = affine(tf.constant(image), tf.constant([angle], tf.float32), tf.constant([scale], tf.float32),
                     tf.constant([shift], tf.float32)).numpy()[0, ..., 0]
        return tuple(int(i) for i in np.unravel_index(out.argmax(), out.shape)), out

    position, out = moved(0.0, 1.0, [0.0, 0.0])
    assert position == (4, 6) and np.array_equal(out, image[0, ..., 0])
    assert moved(0.0, 1.0, [2.0, 0.0])[0] == (4, 8)  # shifted 2 pixels right
    assert moved(0.0, 1.0, [0.0, -3.0])[0] == (1, 6)  # 3 up
    assert moved(np.pi / 2, 1.0, [0.0, 0.0])[0] == (6, 4)  # a quarter turn about (4, 4)
    assert moved(0.0, 2.0, [0.0, 0.0])[0] == (4, 8)  # twice as far from the centre


@pytest.mark.slow
def test_validation_figures_never_see_augmentation(tmp_path: Path, data_out):
    """Train with --augment basic, then the reference stage's predictions equal the model's on the
    plain preprocessed validation images (a crop or flip would change them)."""
    from pipeline.models import training
    from pipeline.stages.model import TrainConfig, TrainStage, load_float_model
    from pipeline.stages.reference import ReferenceConfig, ReferenceStage, reference_predictions

    runner = Runner(tmp_path)
    model_out = runner.run(TrainStage(), TrainConfig(architecture="mobilenet_v2", input_size=32, alpha=0.35,
                                                     preprocessing=PREP.to_dict(), epochs=1, batch_size=8,
                                                     learning_rate=1e-3, seed=0, augment="basic"), {"data": data_out})
    assert model_out.result["augment"] == "basic" and model_out.result["history"][0]["images_per_s"] > 0
    ref = runner.run(ReferenceStage(), ReferenceConfig(preprocessing=PREP.to_dict(), val_max_images=5, seed=2),
                     {"model": model_out, "data": data_out})
    val = data_stage.validation_split(data_out, 5, 2)
    assert ref.result["n"] == 5 and ref.result["val_total"] == data_out.result["val"]
    expected = training.predict(load_float_model(model_out), PREP.apply(val.read(np.arange(len(val)))[0]))
    assert np.allclose(reference_predictions(ref), expected, atol=1e-5)


@pytest.mark.parametrize("prep", [PREP, Preprocessing(4, 4, "BGR", (103.9, 116.8, 123.7), (57.4, 57.1, 58.4)),
                                  Preprocessing(4, 4, "RGB", (0.5,), (255.0,), channels=1)])
def test_preprocessing_in_tensorflow_is_bit_identical_to_numpy(prep):
    from pipeline.models import training
    from pipeline.tf_import import tensorflow

    images = np.random.default_rng(0).integers(0, 256, (3, 4, 4, prep.channels), dtype=np.uint8)
    assert np.array_equal(training.preprocess_tf(tensorflow(), prep, images).numpy(), prep.apply(images))


def test_int8_error_is_measured_on_images_training_never_fitted(tmp_path):
    """held_out_images: the early-stopping hold-out (training.holdout) minus the calibration images."""
    from pipeline.models import training

    root = make_image_folder(tmp_path / "colors", per_class=30)
    data_out = Runner(tmp_path / "out").run(DataStage(), DataConfig(source=str(root), height=32, width=32, val_fraction=0.3, seed=0))
    train = data_stage.open_split(data_out, "train")
    _, stop = training.holdout(train, seed=0)
    calibration = data_stage.calibration_images(data_out, 5, seed=0)
    images, labels = data_stage.held_out_images(data_out, 5, 100, seed=0)
    stop_images = stop.read(np.arange(len(stop)))[0]
    assert 0 < len(images) <= len(stop)
    assert all(any(np.array_equal(x, s) for s in stop_images) for x in images)
    assert not any(np.array_equal(x, c) for x in images for c in calibration)
    assert len(data_stage.held_out_images(data_out, 5, 1, seed=0)[0]) == 1
