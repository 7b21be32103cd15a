"""data: read the images, resize them to the model size, split train/validation (seeded, stratified).

The resized uint8 images go to a store on disk (pipeline/datastore.py), decoded in worker
processes; every later stage reads batches from it, so no stage holds a whole split in memory.
"""
from __future__ import annotations

import itertools
import multiprocessing
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from pipeline import data as datasets
from pipeline.datastore import ImageStore, NoReadableRow, Split, require_space, write_store
from pipeline.models.training import holdout_mask
from pipeline.progress import Progress
from pipeline.stages.base import Stage, StageConfig, StageOutput

IMAGES_FILE = "images.npy"  # uint8 (N, H, W, C), every decoded image, split or not
LABELS_FILE = "labels.npy"  # int64 (N,), -1 for an unreadable file's row
SPLIT_FILES = {"train": "train_rows.npy", "val": "val_rows.npy"}  # row numbers into the store
DECODE_CHUNK = 32  # images per job sent to a worker: amortises the pickling round trip


class DataConfig(StageConfig):
    source: str  # "demo" or a folder path
    height: int
    width: int
    val_fraction: float
    seed: int
    channels: int = 3  # 1: gray images for a 1-channel model


def decode_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def _decoded(paths: list[Path], height: int, width: int, channels: int, workers: int) -> Iterator[np.ndarray | None]:
    """Decoded images in path order; the first in this process (its shape sizes the disk check)."""
    jobs = [(p, height, width, channels) for p in paths]
    progress = Progress("data: decoded", len(jobs))
    if workers <= 1 or len(jobs) < 4 * DECODE_CHUNK:
        results: Iterable = map(datasets.try_load_image_file, jobs)
        pool = None
    else:
        # spawn, not fork: the build process may already hold TensorFlow's threads.
        pool = multiprocessing.get_context("spawn").Pool(workers)
        results = pool.imap(datasets.try_load_image_file, jobs, chunksize=DECODE_CHUNK)
    try:
        for image in results:
            progress.add(1)
            yield image
    finally:
        if pool is not None:
            pool.terminate()


class DataStage(Stage):
    name = "data"
    tools = ("scikit-learn", "pillow", "numpy")
    Config = DataConfig

    def run(self, config: DataConfig, inputs, workdir: Path) -> dict:
        if config.source == "demo":
            demo = datasets.demo_digits(config.height, config.width, config.channels)
            labels, class_names, non_image = demo.labels, demo.class_names, 0
            count, rows = len(demo.labels), iter(demo.images)
        else:
            root = Path(config.source)
            paths, labels, class_names, non_image = datasets.image_files(root)
            count = len(paths)
            rows = _decoded(paths, config.height, config.width, config.channels, decode_workers())
        rows = _checked_space(rows, count, workdir, f"{config.source} at {config.height}x{config.width}")
        try:
            readable = write_store(workdir / IMAGES_FILE, count, rows)
        except NoReadableRow:
            if config.source == "demo":
                raise
            raise datasets.no_readable_image(root, paths) from None
        if config.source == "demo":
            skipped = {"non_image": 0, "unreadable": 0}
        else:
            skipped = datasets.check_readable(root, paths, labels, readable, class_names, non_image)
        kept = np.flatnonzero(readable)
        train, val = datasets.stratified_split(labels[kept], config.val_fraction, config.seed)
        np.save(workdir / LABELS_FILE, np.where(readable, labels, -1))
        np.save(workdir / SPLIT_FILES["train"], kept[train])
        np.save(workdir / SPLIT_FILES["val"], kept[val])
        return {
            "source": config.source,
            "class_names": class_names,
            "train": int(len(train)),
            "val": int(len(val)),
            "skipped": skipped,
            "store_bytes": int((workdir / IMAGES_FILE).stat().st_size),
        }


def _checked_space(rows: Iterator, count: int, folder: Path, what: str) -> Iterator:
    """The same rows, once the disk is known to hold all of them: the first real row gives the
    shape, and the check runs before the store file is created."""
    pulled = []
    for row in rows:
        pulled.append(row)
        if row is not None:
            require_space(folder, count, row.shape, what)
            break
    return itertools.chain(pulled, rows)


class ValidationSampleConfig(StageConfig):
    """Settings of a stage that measures on the validation split. Reference, probe, twin proof and
    verification read the same seeded sample (`--val-max-images`), so their figures compare."""

    val_max_images: int = 0  # 0: the whole validation split, else a seeded sample of this many
    seed: int = 0


def open_split(output: StageOutput, split: str) -> Split:
    """The training or validation split ("train" / "val"), read in batches from the store."""
    rows = np.load(output.path(SPLIT_FILES[split]))
    labels = np.load(output.path(LABELS_FILE))[rows]
    return Split(ImageStore(output.path(IMAGES_FILE)), rows, labels)


def validation_split(output: StageOutput, max_images: int, seed: int) -> Split:
    """The validation images every figure is measured on: all of them, or a seeded sample of
    `max_images` (the same sample for the reference and every artifact, so they compare)."""
    return open_split(output, "val").sample(max_images, seed)


def calibration_images(output: StageOutput, count: int, seed: int) -> np.ndarray:
    """A seeded sample of training images (uint8) for quantization calibration: only these are read."""
    train = open_split(output, "train")
    return train.read(_calibration_order(len(train), seed)[: min(count, len(train))])[0]


def held_out_images(output: StageOutput, calibration_count: int, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to `count` training images (uint8) and labels that `calibration_images(output, calibration_count,
    seed)` did not pick: int8 error is measured on images that did not set the ranges, and never on
    the validation split the report scores on. When early stopping holds images out of training
    (training.holdout_mask, same seed), only those: a model trained here never fitted them, so its
    int8 and float top-1 on them can differ as on new images. Empty when nothing is left."""
    train = open_split(output, "train")
    positions = _calibration_order(len(train), seed)[calibration_count:]
    never_fitted = holdout_mask(train.labels, seed)
    if never_fitted is not None:
        positions = positions[never_fitted[positions]]
    positions = positions[:count]
    return train.read(positions) if len(positions) else (np.empty((0,)), np.empty((0,), np.int64))


def decision_images(output: StageOutput, calibration_count: int, count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The images an int8 fallback decides on (quant.int8_decision): training images (uint8) that
    `calibration_images(output, calibration_count, seed)` did not pick, their labels, and which of
    them the model never fitted (early stopping's hold-out, training.holdout_mask, same seed; none
    when the classes are too small for one). The first `count` of them in the seeded order, fitted
    or not (agreement with the float model needs neither labels nor unseen images), and every
    never-fitted one up to `count` more (label top-1 needs as many as there are). Empty when
    calibration took every training image."""
    train = open_split(output, "train")
    positions = _calibration_order(len(train), seed)[calibration_count:]
    mask = holdout_mask(train.labels, seed)
    never_fitted = np.zeros(len(positions), bool) if mask is None else mask[positions]
    chosen = np.zeros(len(positions), bool)
    chosen[:count] = True
    chosen[np.flatnonzero(never_fitted)[:count]] = True
    if not chosen.any():
        return np.empty((0,), np.uint8), np.empty((0,), np.int64), np.empty((0,), bool)
    images, labels = train.read(positions[chosen])
    return images, labels, never_fitted[chosen]


def _calibration_order(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n)


def predict_split(predict, split: Split, prep: datasets.Preprocessing, what: str, batch_size: int = 256) -> np.ndarray:
    """`predict` (float NHWC batch -> outputs) over a split, preprocessed batch by batch: memory holds one batch."""
    progress = Progress(what, len(split))
    outputs = []
    for images, _ in split.batches(batch_size):
        outputs.append(np.asarray(predict(prep.apply(images)), np.float32))
        progress.add(len(images))
    return np.concatenate(outputs)
