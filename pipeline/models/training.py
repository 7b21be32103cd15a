"""Fitting a tf_keras classifier, shared by float training and quantization-aware fine-tuning."""
from __future__ import annotations

import logging
import time

import numpy as np

log = logging.getLogger("deploy")


# Early stopping: this share of each class's training images is held out (never the validation
# split the artifacts are scored on); training stops once its accuracy has not improved for
# `patience` epochs, and the best epoch's weights are kept.
STOP_HOLDOUT = 0.1


def holdout(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(x_fit, y_fit, x_stop, y_stop), STOP_HOLDOUT of every class held out; None if a class is too small."""
    rng = np.random.default_rng(seed)
    stop = []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        count = int(len(members) * STOP_HOLDOUT)
        if count == 0:
            return None
        stop.extend(members[:count])
    mask = np.zeros(len(y), bool)
    mask[stop] = True
    return x[~mask], y[~mask], x[mask], y[mask]


def fit(model, x: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int, learning_rate: float, seed: int, what: str,
        patience: int = 0) -> tuple[list[dict], dict]:
    """Adam with cosine decay on sparse labels; logs one line per epoch; returns the history and
    what early stopping did (patience 0: off, every epoch runs)."""
    from pipeline.tf_import import keras

    tf_keras = keras()
    tf_keras.utils.set_random_seed(seed)
    split = holdout(x, y, seed) if patience > 0 else None
    validation = None
    if split is not None:
        x, y, *validation = split
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
            held_out = f", held-out accuracy {logs['val_accuracy']:.3f}" if "val_accuracy" in logs else ""
            log.info(
                "  %s epoch %d/%d: loss %.4f, train accuracy %.3f%s (%.1f s)",
                what, epoch + 1, epochs, logs.get("loss", float("nan")), logs.get("accuracy", float("nan")), held_out,
                time.perf_counter() - self.t0,
            )

    callbacks = [EpochLog()]
    if validation is not None:
        callbacks.append(tf_keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=patience, restore_best_weights=True))
    history = model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0, callbacks=callbacks,
                        validation_data=tuple(validation) if validation is not None else None).history
    rows = [
        {"epoch": i + 1, "loss": float(history["loss"][i]), "accuracy": float(history["accuracy"][i]),
         **({"held_out_accuracy": float(history["val_accuracy"][i])} if validation is not None else {})}
        for i in range(len(history["loss"]))
    ]
    return rows, _stopping_record(rows, epochs, patience, validation)


def _stopping_record(rows: list[dict], epochs: int, patience: int, validation) -> dict:
    if patience == 0:
        return {"status": "off"}
    if validation is None:
        return {"status": "off", "reason": f"a class has fewer than {int(1 / STOP_HOLDOUT)} training images to hold out"}
    best = max(rows, key=lambda r: r["held_out_accuracy"])  # the first epoch reaching the best accuracy
    return {"status": "stopped" if len(rows) < epochs else "ran every epoch", "patience": patience,
            "held_out_images": int(len(validation[1])), "epochs_run": len(rows), "best_epoch": best["epoch"],
            "best_held_out_accuracy": best["held_out_accuracy"]}


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
