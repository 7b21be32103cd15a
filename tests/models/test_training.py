"""Early stopping: held out from the training images, stops once held-out accuracy stops improving."""
import numpy as np
import pytest

from pipeline import datastore
from pipeline.data import Preprocessing
from pipeline.models import training


def _split(tmp_path, images: np.ndarray, labels: np.ndarray) -> datastore.Split:
    datastore.write_store(tmp_path / "s.npy", len(images), iter(images))
    return datastore.Split(datastore.ImageStore(tmp_path / "s.npy"), np.arange(len(images)), labels)


def test_holdout_takes_a_tenth_of_every_class_and_nothing_twice(tmp_path):
    labels = np.repeat([0, 1, 2], [40, 20, 10])
    split = _split(tmp_path, np.zeros((len(labels), 2, 2, 3), np.uint8), labels)
    fit, stop = training.holdout(split, seed=0)
    assert sorted(np.bincount(stop.labels)) == [1, 2, 4]
    assert not set(fit.rows) & set(stop.rows) and len(fit) + len(stop) == len(split)
    assert np.array_equal(training.holdout(split, seed=0)[1].rows, stop.rows)  # seeded
    small = datastore.Split(split.store, np.arange(15), np.repeat([0, 1], [9, 6]))
    assert training.holdout(small, seed=0) is None  # 9 images of a class: no whole tenth


@pytest.mark.slow
def test_training_stops_when_held_out_accuracy_stops_improving_and_says_so(tmp_path):
    from tests.conftest import tiny_model

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 30)
    colors = np.array([[220, 30, 30], [30, 200, 40], [30, 40, 220]])
    images = np.clip(colors[labels][:, None, None, :] + rng.normal(0, 25, (len(labels), 16, 16, 3)), 0, 255).astype(np.uint8)
    split = _split(tmp_path, images, labels)
    prep = Preprocessing(16, 16, "RGB", (127.5,) * 3, (127.5,) * 3)
    history, stopping = training.fit(tiny_model(), split, prep, epochs=60, batch_size=8, learning_rate=1e-2, seed=0,
                                     augment="none", what="test", patience=3)
    assert stopping["status"] == "stopped" and stopping["epochs_run"] == len(history) < 60
    assert stopping["held_out_images"] == 9 and stopping["patience"] == 3
    assert stopping["watched_from_epoch"] == 31 and len(history) >= 33  # the first half always runs
    watched = [h["held_out_accuracy"] for h in history[30:]]
    assert stopping["best_held_out_accuracy"] == max(watched)
    assert stopping["best_epoch"] == len(history) - 3  # no improvement in the last `patience` epochs
    assert watched.index(max(watched)) + 31 == stopping["best_epoch"]

    small = datastore.Split(split.store, np.arange(6), labels[:6])
    _, off = training.fit(tiny_model(), small, prep, epochs=1, batch_size=8, learning_rate=1e-2, seed=0, augment="none",
                          what="test", patience=3)
    assert off["status"] == "off" and "fewer than 10" in off["reason"]

    # A hold-out too small to decide on (9 images here, 139 on the demo digits): no early stopping,
    # every epoch on every training image.
    rows, off = training.fit(tiny_model(), split, prep, epochs=2, batch_size=8, learning_rate=1e-2, seed=0, augment="none",
                             what="test", patience=3, min_held_out=10)
    assert off["status"] == "off" and "9 images, fewer than 10" in off["reason"]
    assert len(rows) == 2 and all("held_out_accuracy" not in row for row in rows)


def test_freeze_batchnorm_after_one_epoch_keeps_the_moving_statistics_from_then_on():
    from pipeline.models.training import freeze_batchnorm_after
    from pipeline.tf_import import keras, tfmot

    k = keras()
    k.utils.set_random_seed(0)
    model = k.Sequential([k.Input((8, 8, 3)), k.layers.Conv2D(4, 3), k.layers.BatchNormalization(), k.layers.ReLU(),
                          k.layers.GlobalAveragePooling2D(), k.layers.Dense(2)])
    qat = tfmot().quantization.keras.quantize_model(model)
    bn = next(layer for layer in qat.submodules if type(layer).__name__ == "BatchNormalization")
    rng = np.random.default_rng(0)
    x, y = rng.normal(2.0, 1.0, size=(64, 8, 8, 3)).astype(np.float32), np.arange(64) % 2
    means = []
    watch = k.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: means.append(bn.moving_mean.numpy().copy()))
    qat.compile("adam", k.losses.SparseCategoricalCrossentropy(from_logits=True))
    qat.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[freeze_batchnorm_after(qat, 1), watch])
    assert np.abs(means[0]).max() > 0.01  # epoch 1 moved the statistics away from their start (0)
    np.testing.assert_array_equal(means[1], means[0])
    np.testing.assert_array_equal(means[2], means[0])
    assert bn.trainable  # again after training: a frozen BN in a tfmot wrapper broke saving the QAT model as .h5
    names = [w.name for w in qat.weights]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("warmup_epochs, weight_decay", [(0, 0.0), (1, 0.004)])
def test_the_schedule_is_cosine_decay_after_an_optional_linear_warm_up(tmp_path, warmup_epochs, weight_decay):
    """The rate the optimizer used: from learning_rate (or 0, rising over the warm-up) down to 0 at the
    last step; AdamW with its decay when weight_decay is given."""
    from tests.conftest import tiny_model

    labels = np.repeat([0, 1], 16)
    images = np.random.default_rng(0).integers(0, 255, (len(labels), 16, 16, 3), np.uint8)
    prep = Preprocessing(16, 16, "RGB", (127.5,) * 3, (127.5,) * 3)
    model = tiny_model()
    training.fit(model, _split(tmp_path, images, labels), prep, epochs=3, batch_size=8, learning_rate=1e-2, seed=0,
                 augment="affine", what="test", warmup_epochs=warmup_epochs, weight_decay=weight_decay)
    from pipeline.tf_import import keras

    schedule, steps = keras().optimizers.schedules.deserialize(model.optimizer.get_config()["learning_rate"]), 3 * 4
    rate = [float(schedule(step)) for step in range(steps + 1)]
    assert int(model.optimizer.iterations) == steps and rate[-1] == pytest.approx(0.0, abs=1e-9)
    if warmup_epochs:
        assert rate[0] == 0.0 and rate[4] == pytest.approx(1e-2) and rate[2] == pytest.approx(5e-3)
        assert type(model.optimizer).__name__ == "AdamW" and model.optimizer.weight_decay == pytest.approx(0.004)
    else:
        assert rate[0] == pytest.approx(1e-2) and rate[6] == pytest.approx(5e-3)  # half-way down the cosine
        assert type(model.optimizer).__name__ == "Adam"
    assert all(a >= b for a, b in zip(rate[4:], rate[5:]))  # only down after the warm-up


def test_label_smoothing_mixes_the_one_hot_target_with_the_uniform_one(tmp_path):
    """The smoothed loss on sparse labels equals cross-entropy against (1 - s) one-hot + s / classes;
    the model trains with it."""
    from tests.conftest import tiny_model

    loss = training._smoothed_loss(0.1, 4)
    probs = np.array([[0.7, 0.1, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25]], np.float32)
    target = np.array([[0.925, 0.025, 0.025, 0.025], [0.025, 0.025, 0.925, 0.025]])
    expected = -(target * np.log(probs)).sum(1)
    assert np.asarray(loss(np.array([0, 2]), probs)) == pytest.approx(expected, rel=1e-5)
    labels = np.repeat([0, 1], 16)
    images = np.random.default_rng(0).integers(0, 255, (len(labels), 16, 16, 3), np.uint8)
    model = tiny_model()
    history, _ = training.fit(model, _split(tmp_path, images, labels), Preprocessing(16, 16, "RGB", (127.5,) * 3, (127.5,) * 3),
                              epochs=1, batch_size=8, learning_rate=1e-2, seed=0, augment="none", what="test", label_smoothing=0.1)
    assert np.isfinite(history[0]["loss"]) and model.loss.__qualname__.startswith("_smoothed_loss")
