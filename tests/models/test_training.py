"""Early stopping: held out from the training images, stops once held-out accuracy stops improving."""
import numpy as np
import pytest

from pipeline.models import training


def test_holdout_takes_a_tenth_of_every_class_and_nothing_twice():
    y = np.repeat([0, 1, 2], [40, 20, 10])
    x = np.arange(len(y))
    x_fit, y_fit, x_stop, y_stop = training.holdout(x, y, seed=0)
    assert sorted(np.bincount(y_stop)) == [1, 2, 4]
    assert not set(x_fit) & set(x_stop) and len(x_fit) + len(x_stop) == len(x)
    assert np.array_equal(training.holdout(x, y, seed=0)[2], x_stop)  # seeded
    assert training.holdout(np.arange(15), np.repeat([0, 1], [9, 6]), seed=0) is None  # 9 images: 0.9 of one


@pytest.mark.slow
def test_training_stops_when_held_out_accuracy_stops_improving_and_says_so():
    from tests.conftest import tiny_model

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 30)
    colors = np.array([[0.8, -0.7, -0.7], [-0.7, 0.6, -0.6], [-0.7, -0.6, 0.8]], np.float32)
    x = colors[y][:, None, None, :] + rng.normal(0, 0.2, (len(y), 16, 16, 3)).astype(np.float32)
    history, stopping = training.fit(tiny_model(), x, y, epochs=60, batch_size=8, learning_rate=1e-2, seed=0,
                                     what="test", patience=3)
    assert stopping["status"] == "stopped" and stopping["epochs_run"] == len(history) < 60
    assert stopping["held_out_images"] == 9 and stopping["patience"] == 3
    accuracies = [h["held_out_accuracy"] for h in history]
    assert stopping["best_held_out_accuracy"] == max(accuracies)
    assert stopping["best_epoch"] == len(history) - 3  # no improvement in the last `patience` epochs
    assert accuracies.index(max(accuracies)) + 1 == stopping["best_epoch"]

    _, off = training.fit(tiny_model(), x[:6], y[:6], epochs=1, batch_size=8, learning_rate=1e-2, seed=0, what="test", patience=3)
    assert off["status"] == "off" and "fewer than 10" in off["reason"]
