"""Fitting a tf_keras classifier, shared by float training and quantization-aware fine-tuning."""
from __future__ import annotations

import logging
import time

import numpy as np

log = logging.getLogger("deploy")


def fit(model, x: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int, learning_rate: float, seed: int, what: str) -> list[dict]:
    """Adam with cosine decay on sparse labels; logs one line per epoch; returns the history."""
    from pipeline.tf_import import keras

    tf_keras = keras()
    tf_keras.utils.set_random_seed(seed)
    steps = epochs * int(np.ceil(len(x) / batch_size))
    schedule = tf_keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(steps, 1))
    model.compile(
        optimizer=tf_keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )

    class EpochLog(tf_keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            log.info(
                "  %s epoch %d/%d: loss %.4f, train accuracy %.3f (%.1f s)",
                what, epoch + 1, epochs, logs.get("loss", float("nan")), logs.get("accuracy", float("nan")),
                time.perf_counter() - self.t0,
            )

    history = model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0, callbacks=[EpochLog()])
    return [
        {"epoch": i + 1, "loss": float(history.history["loss"][i]), "accuracy": float(history.history["accuracy"][i])}
        for i in range(len(history.history["loss"]))
    ]


def use_fast_batchnorm(model, momentum: float = 0.9) -> None:
    """Let BatchNormalization's moving statistics converge within a short training run.

    Keras applications use momentum 0.99-0.999, tuned for ImageNet's millions of steps; with a
    few hundred steps the moving averages stay near their initial values and a model that fits
    its training data perfectly predicts one class in inference mode.
    """
    for layer in model.submodules:
        if type(layer).__name__ == "BatchNormalization":
            layer.momentum = momentum


def predict(model, x: np.ndarray, batch_size: int = 128) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32)
