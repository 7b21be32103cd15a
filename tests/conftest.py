"""Shared fixtures: tiny image folders and tiny trained Keras models, built in code."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

COLORS = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 200)}


def make_image_folder(root: Path, per_class: int = 12, size: int = 16, classes=COLORS, seed: int = 0) -> Path:
    """One subfolder per class of noisy solid-colour PNGs: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    for name, rgb in classes.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            noise = rng.integers(-40, 40, size=(size, size, 3))
            pixels = np.clip(np.asarray(rgb) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def tiny_model(size: int = 16, classes: int = 3, name: str = "tiny"):
    """Conv-BN-ReLU, depthwise conv, pooling, dense softmax: the shapes a MobileNet is made of."""
    from pipeline.tf_import import keras

    k = keras()
    inputs = k.Input((size, size, 3))
    x = k.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(inputs)
    x = k.layers.BatchNormalization()(x)
    x = k.layers.ReLU(6.0)(x)
    x = k.layers.DepthwiseConv2D(3, padding="same")(x)
    x = k.layers.ReLU(6.0)(x)
    x = k.layers.GlobalAveragePooling2D()(x)
    outputs = k.layers.Dense(classes, activation="softmax")(x)
    return k.Model(inputs, outputs, name=name)


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("data") / "colors")


@pytest.fixture(scope="session")
def trained_model_file(tmp_path_factory, image_folder) -> Path:
    """A tiny model trained on `image_folder` with the pipeline's default preprocessing, saved as .keras."""
    from pipeline.data import load_image_folder

    images = load_image_folder(image_folder, 16, 16)
    x = (images.images.astype(np.float32) - 127.5) / 127.5
    model = tiny_model()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, images.labels, epochs=30, batch_size=8, verbose=0)
    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    model.save(path)
    return path
