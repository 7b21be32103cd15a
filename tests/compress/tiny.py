"""Tiny models in the shape XNNPACK's sparse path needs (3x3 stride-2 stem on 3 channels, depthwise,
1x1 convs, global average pooling), and a tiny split of coloured images to fine-tune on."""
from __future__ import annotations

import numpy as np

from pipeline import datastore


def pointwise_model(size: int = 16, classes: int = 3, stem_padding: str = "symmetric", width: int = 32):
    """stem: "symmetric" (ZeroPadding2D(1) + valid, what XNNPACK wants) or "same" (Keras's usual).
    width: the two 1x1 convolutions' filters (a speed-up test needs them to outweigh the call's fixed
    cost on a host whose int8 is fast: at 32, pruning every group by 0.9 gave only 1.12x on a Xeon with AMX)."""
    from pipeline.tf_import import keras

    k = keras()
    inputs = k.Input((size, size, 3))
    x = inputs
    if stem_padding == "symmetric":
        x = k.layers.ZeroPadding2D(1)(x)
    x = k.layers.Conv2D(8, 3, strides=2, padding="valid" if stem_padding == "symmetric" else "same", use_bias=False)(x)
    x = k.layers.BatchNormalization()(x)
    x = k.layers.ReLU(6.0)(x)
    x = k.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = k.layers.BatchNormalization()(x)
    x = k.layers.ReLU(6.0)(x)
    x = k.layers.Conv2D(width, 1, use_bias=False)(x)
    x = k.layers.BatchNormalization()(x)
    x = k.layers.ReLU(6.0)(x)
    x = k.layers.Conv2D(width, 1, use_bias=False)(x)
    x = k.layers.ReLU(6.0)(x)
    x = k.layers.GlobalAveragePooling2D(keepdims=True)(x)
    x = k.layers.Flatten()(x)
    outputs = k.layers.Dense(classes, activation="softmax")(x)
    return k.Model(inputs, outputs, name="pointwise")


COLORS = np.array([[220, 30, 30], [30, 200, 40], [30, 40, 220]])


def colour_split(folder, per_class: int = 30, size: int = 16, seed: int = 0) -> datastore.Split:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(COLORS)), per_class)
    images = np.clip(COLORS[labels][:, None, None, :] + rng.normal(0, 25, (len(labels), size, size, 3)), 0, 255).astype(np.uint8)
    datastore.write_store(folder / "images.npy", len(images), iter(images))
    return datastore.Split(datastore.ImageStore(folder / "images.npy"), np.arange(len(images)), labels)


def preprocessing(size: int = 16):
    from pipeline.data import Preprocessing

    return Preprocessing(size, size, "RGB", (127.5,) * 3, (127.5,) * 3)
