"""data: read the images, resize them to the model size, split train/validation (seeded, stratified)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline import data as datasets
from pipeline.stages.base import Stage, StageConfig, StageOutput

DATASET_FILE = "dataset.npz"


class DataConfig(StageConfig):
    source: str  # "demo" or a folder path
    height: int
    width: int
    val_fraction: float
    seed: int
    channels: int = 3  # 1: gray images for a 1-channel model


class DataStage(Stage):
    name = "data"
    tools = ("scikit-learn", "pillow", "numpy")
    Config = DataConfig

    def run(self, config: DataConfig, inputs, workdir: Path) -> dict:
        if config.source == "demo":
            images = datasets.demo_digits(config.height, config.width, config.channels)
        else:
            images = datasets.load_image_folder(Path(config.source), config.height, config.width, config.channels)
        train, val = datasets.stratified_split(images.labels, config.val_fraction, config.seed)
        np.savez(
            workdir / DATASET_FILE,
            x_train=images.images[train], y_train=images.labels[train],
            x_val=images.images[val], y_val=images.labels[val],
        )
        return {
            "source": config.source,
            "class_names": images.class_names,
            "train": int(len(train)),
            "val": int(len(val)),
            "skipped": images.skipped,
        }


def load_split(output: StageOutput) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_val, y_val) as uint8 RGB (or gray, 1 channel) images and integer labels."""
    with np.load(output.path(DATASET_FILE)) as d:
        return d["x_train"], d["y_train"], d["x_val"], d["y_val"]


def calibration_images(output: StageOutput, count: int, seed: int) -> np.ndarray:
    """A seeded sample of training images (uint8) for quantization calibration."""
    x_train = load_split(output)[0]
    order = np.random.default_rng(seed).permutation(len(x_train))
    return x_train[order[: min(count, len(x_train))]]
