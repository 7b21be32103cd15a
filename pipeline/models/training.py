"""Fitting a tf_keras classifier, shared by float training and quantization-aware fine-tuning."""
from __future__ import annotations

import itertools
import logging
import time

import numpy as np

from pipeline.data import Preprocessing
from pipeline.datastore import Split
from pipeline.progress import Progress

log = logging.getLogger("deploy")


# Early stopping: this share of each class's training images is held out (never the validation
# split the artifacts are scored on); training stops once their accuracy has not improved for
# `patience` epochs, and the best epoch's weights are kept.
STOP_HOLDOUT = 0.1
# ... and only the second half of the epochs is watched: nets with BatchNorm trained from scratch
# can score chance on held-out images for their first epochs (measured on the photo set: MobileNet
# V2 and ShuffleNet V2 stopped at epoch 6 of 15, keeping epoch 1's chance-level weights).
STOP_WATCH_FROM = 0.5
# Training on the labels stops early only when its hold-out has this many images: on fewer, one image
# is half a point or more, and the epoch it picks is noise (the demo digits' 139 stopped MobileNet
# V1 at epoch 16 of 20, best epoch 11, 2.5 points below running every epoch; docs/training.md).
# Below it, every epoch runs on every training image (the cosine decay's end is the model kept).
MIN_STOP_HELD_OUT = 200
# What early stopping can watch on the held-out images: top-1 on the labels, or top-1 agreement with
# a teacher (pipeline/compress/distill.py tracks it).
MONITORS = ("accuracy", "agreement")


def holdout_mask(labels: np.ndarray, seed: int) -> np.ndarray | None:
    """Per training image: held out? STOP_HOLDOUT of every class; None if a class is too small."""
    rng = np.random.default_rng(seed)
    stop = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        count = int(len(members) * STOP_HOLDOUT)
        if count == 0:
            return None
        stop.extend(members[:count])
    mask = np.zeros(len(labels), bool)
    mask[stop] = True
    return mask


def holdout(split: Split, seed: int) -> tuple[Split, Split] | None:
    """(fit, stop): the training split without and with its held-out images (`holdout_mask`)."""
    mask = holdout_mask(split.labels, seed)
    if mask is None:
        return None
    return (Split(split.store, split.rows[~mask], split.labels[~mask]),
            Split(split.store, split.rows[mask], split.labels[mask]))


def training_dataset(split: Split, prep: Preprocessing, *, batch_size: int, seed: int, augment: str):
    """tf.data over the training split: a new seeded order each epoch, uint8 batches read from the
    store in a Python generator, preprocessed (`preprocess_tf`) and augmented in TensorFlow in one
    thread, prefetched."""
    from pipeline.augment import AUGMENTS, random_affine, random_resized_crop_flip
    from pipeline.tf_import import tensorflow

    if augment not in AUGMENTS:
        raise ValueError(f"unknown augmentation {augment!r} (choose from {', '.join(AUGMENTS)})")
    tf = tensorflow()
    steps = int(np.ceil(len(split) / batch_size))
    epochs = itertools.count()

    def batches():
        epoch = next(epochs)  # tf.data calls this once per epoch
        order = np.random.default_rng([seed, epoch]).permutation(len(split))
        for step in range(steps):
            # Sorted within the batch: near rows read together; a batch's order changes nothing in SGD.
            images, labels = split.read(np.sort(order[step * batch_size : (step + 1) * batch_size]))
            yield images, labels, np.int64(epoch * steps + step)

    signature = (
        tf.TensorSpec((None, *split.store.row_shape), tf.uint8),  # 4x less than float through Python
        tf.TensorSpec((None,), tf.int64),
        tf.TensorSpec((), tf.int64),
    )
    dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
    if augment != "none":
        transform = random_resized_crop_flip if augment == "basic" else random_affine
        dataset = dataset.map(lambda x, y, step: (transform(preprocess_tf(tf, prep, x), tf.stack([tf.constant(seed, tf.int64), step])), y))
    else:
        dataset = dataset.map(lambda x, y, step: (preprocess_tf(tf, prep, x), y))
    # One input thread, its ops single-threaded: training's ops already use every core the stage may
    # use, so the input (cast, normalisation, crops) competes with them with one thread at most.
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.threading.max_intra_op_parallelism = 1
    return dataset.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(2).with_options(options)


def preprocess_tf(tf, prep: Preprocessing, images_uint8):
    """`Preprocessing.apply` in TensorFlow, the same float32 operations (bit-identical, tested):
    vectorised in TensorFlow's threads rather than numpy's single pass in the generator."""
    x = tf.cast(images_uint8, tf.float32)
    if prep.channel_order == "BGR" and prep.channels == 3:
        x = x[..., ::-1]
    return (x - tf.constant(prep.mean, tf.float32)) / tf.constant(prep.std, tf.float32)


def _smoothed_loss(smoothing: float, classes: int):
    """Cross-entropy on sparse labels with label smoothing (Keras's sparse loss has no smoothing)."""
    from pipeline.tf_import import keras, tensorflow

    tf, tf_keras = tensorflow(), keras()

    def loss(y_true, y_pred):
        one_hot = tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), classes)
        return tf_keras.losses.categorical_crossentropy(one_hot, y_pred, label_smoothing=smoothing)

    return loss


def fit(model, split: Split, prep: Preprocessing, *, epochs: int, batch_size: int, learning_rate: float, seed: int,
        augment: str, what: str, patience: int = 0, teacher=None, distill=None,
        callbacks: list | None = None, watch_from: int | None = None, monitor: str = "accuracy",
        start_is_candidate: bool = False, warmup_epochs: int = 0, weight_decay: float = 0.0,
        label_smoothing: float = 0.0, min_held_out: int = 0) -> tuple[list[dict], dict]:
    """Adam with cosine decay on sparse labels, streaming the split; logs progress and one line per
    epoch; returns the history (with training images/s per epoch) and what early stopping did
    (patience 0: off, every epoch runs). `warmup_epochs`: the rate rises linearly from 0 over these
    first epochs, then the cosine decay; `weight_decay`: AdamW's decoupled decay instead of Adam;
    `label_smoothing`: the labels' one-hot targets mixed with the uniform one (not with a teacher)
    (the three for scripts/compare_training_recipes.py's comparisons, none a default: docs/training.md).
    `min_held_out`: early stopping only when its hold-out has at least this many images. With a
    `teacher` (and `distill`, a DistillConfig), the model learns from the teacher's soft targets too
    (pipeline/compress/distill.py); `model` is trained in place either way. `callbacks`: extra Keras
    callbacks (e.g. tfmot's UpdatePruningStep, which pruning needs). `watch_from`: the first epoch (0-based) early stopping
    watches and may keep (default: half the epochs, for training from scratch; a fine-tuning of a
    trained model watches from 0, its first epoch may be its best). `monitor`: what early stopping
    watches on the held-out images, "accuracy" on the labels or, with a teacher, "agreement" with its
    top-1. `start_is_candidate`: the model before fine-tuning is measured on the held-out images too
    and kept unless an epoch beats it (a fine-tuning that must not make the model worse: QAT)."""
    from pipeline.tf_import import keras, tensorflow

    tf_keras = keras()
    tf_keras.utils.set_random_seed(seed)
    # Same config, same thread count -> same weights, in any process (local worker, Ray task).
    tensorflow().config.experimental.enable_op_determinism()
    watch_from = _watched_from(epochs) if watch_from is None else watch_from
    parts = holdout(split, seed) if patience > 0 else None
    stop, too_few = None, None
    if parts is not None and len(parts[1]) < min_held_out:
        too_few = len(parts[1])
    elif parts is not None:
        split, stop = parts
    dataset = training_dataset(split, prep, batch_size=batch_size, seed=seed, augment=augment)
    steps_per_epoch = int(np.ceil(len(split) / batch_size))
    steps = epochs * steps_per_epoch
    warmup = max(0, min(warmup_epochs * steps_per_epoch, steps - 1))
    schedule = tf_keras.optimizers.schedules.CosineDecay(0.0 if warmup else learning_rate, decay_steps=max(steps - warmup, 1),
                                                         warmup_target=learning_rate if warmup else None, warmup_steps=warmup)
    optimizer = tf_keras.optimizers.AdamW(schedule, weight_decay=weight_decay) if weight_decay else tf_keras.optimizers.Adam(schedule)
    if teacher is not None:
        from pipeline.compress.distill import DistillConfig, distiller

        model = distiller(model, teacher, distill or DistillConfig())
    if label_smoothing and teacher is not None:
        raise ValueError("label smoothing applies to the labels' loss, not to distillation's")
    model.compile(
        optimizer=optimizer,
        loss=_smoothed_loss(label_smoothing, model.output_shape[-1]) if label_smoothing else "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    rates = []

    class EpochLog(tf_keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()
            self.progress = Progress(f"{what} epoch {epoch + 1}/{epochs}", len(split), every_s=30.0)

        def on_train_batch_end(self, batch, logs=None):
            self.progress.add(min(batch_size, len(split) - self.progress.done))

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            seconds = time.perf_counter() - self.t0
            rates.append(len(split) / seconds)
            held_out = "".join(f", held-out {name} {logs[f'val_{name}']:.3f}" for name in MONITORS if f"val_{name}" in logs)
            log.info(
                "  %s epoch %d/%d: loss %.4f, train accuracy %.3f%s (%.1f s, %.1f images/s)",
                what, epoch + 1, epochs, logs.get("loss", float("nan")), logs.get("accuracy", float("nan")), held_out,
                seconds, rates[-1],
            )

    if monitor not in MONITORS or (monitor == "agreement" and teacher is None):
        raise ValueError(f"early stopping cannot watch {monitor!r} here (accuracy, or agreement with a teacher)")
    callbacks = [EpochLog(), *(callbacks or [])]
    validation, start = None, None
    if stop is not None:
        validation = training_dataset(stop, prep, batch_size=batch_size, seed=seed, augment="none")
        stopping = tf_keras.callbacks.EarlyStopping(monitor=f"val_{monitor}", mode="max", patience=patience,
                                                    restore_best_weights=True, start_from_epoch=watch_from)
        if start_is_candidate:
            start = {f"held_out_{name}": float(value) for name, value in model.evaluate(validation, verbose=0, return_dict=True).items()
                     if name != "loss"}
            log.info("  %s before fine-tuning: held-out %s %.3f", what, monitor, start[f"held_out_{monitor}"])
            stopping = _from_start(stopping, start[f"held_out_{monitor}"])
        callbacks.append(stopping)
    history = model.fit(dataset, epochs=epochs, verbose=0, callbacks=callbacks, validation_data=validation).history
    rows = [
        {"epoch": i + 1, "loss": float(history["loss"][i]), "accuracy": float(history["accuracy"][i]),
         "images_per_s": round(rates[i], 2),
         **{f"held_out_{name}": float(history[f"val_{name}"][i]) for name in MONITORS if f"val_{name}" in history}}
        for i in range(len(history["loss"]))
    ]
    if too_few is not None:
        return rows, {"status": "off", "reason": f"its hold-out would have {too_few} images, fewer than {min_held_out}: "
                                                  "every epoch ran on every training image"}
    return rows, _stopping_record(rows, epochs, patience, stop, watch_from, monitor, start)


def _from_start(stopping, value: float):
    """`stopping` (a Keras EarlyStopping restoring its best weights) with the model as it is now as
    its best so far (epoch 0, `value` held out): an epoch must beat it to be kept."""
    begin = stopping.on_train_begin

    def on_train_begin(logs=None):
        begin(logs)
        stopping.best, stopping.best_weights, stopping.best_epoch = value, stopping.model.get_weights(), -1

    stopping.on_train_begin = on_train_begin
    return stopping


def _stopping_record(rows: list[dict], epochs: int, patience: int, stop: Split | None, watch_from: int,
                     monitor: str = "accuracy", start: dict | None = None) -> dict:
    if patience == 0:
        return {"status": "off"}
    if stop is None:
        return {"status": "off", "reason": f"a class has fewer than {int(1 / STOP_HOLDOUT)} training images to hold out"}
    key = f"held_out_{monitor}"
    watched = rows[watch_from:] or rows
    candidates = ([{"epoch": 0, **start}] if start else []) + watched
    best = max(candidates, key=lambda r: r[key])  # the first candidate reaching the best figure
    return {"status": "stopped" if len(rows) < epochs else "ran every epoch", "patience": patience,
            "held_out_images": len(stop), "epochs_run": len(rows), "watched_from_epoch": candidates[0]["epoch"],
            "monitor": monitor, "best_epoch": best["epoch"], f"best_{key}": best[key],
            **({"start": start} if start else {})}


def _watched_from(epochs: int) -> int:
    """Epochs early stopping lets run before it watches (Keras's start_from_epoch)."""
    return int(epochs * STOP_WATCH_FROM)


def freeze_batchnorm_after(model, epochs: int):
    """A Keras callback that, after `epochs` epochs, runs every BatchNormalization of `model` on its
    moving statistics for the rest of the training and stops updating them: the "freeze batch norm"
    step of QAT (Jacob et al. 2018; Krishnamoorthi 2018), so the statistics the int8 model folds are
    the ones its weights were last tuned with, not an average of batch statistics that moved under
    them. (Keras's switch is trainable=False; a BN inside a tfmot QuantizeWrapper still trains its
    gamma and beta through the wrapper: measured, its moving mean stays, gamma moves.)"""
    from pipeline.tf_import import keras

    batchnorms = [layer for layer in model.submodules if type(layer).__name__ == "BatchNormalization"]

    class FreezeBatchNorm(keras().callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 != epochs or not batchnorms:
                return
            for layer in batchnorms:
                layer.trainable = False  # Keras then calls it in inference mode, even when training
            # fit() takes its step function from the model each step: the new one sees the frozen layers.
            self.model.train_function = self.model.make_train_function(force=True)
            log.info("  batch normalization frozen after epoch %d (%d layers)", epoch + 1, len(batchnorms))

        def on_train_end(self, logs=None):
            # Trainable again for what follows: a BN inside a tfmot wrapper frozen would list its
            # gamma twice in the wrapper's weights, and saving the model as .h5 fails on the name.
            for layer in batchnorms:
                layer.trainable = True

    return FreezeBatchNorm()


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
