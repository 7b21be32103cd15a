"""The images a target's outputs are compared on: a fixed, seeded subset of the validation split,
preprocessed as the artifact's recipe says, in its layout, with their labels.

64 by default: under QEMU a 64x64 MobileNet V2 takes tens of milliseconds per image, so 64 images
add seconds, not minutes, per artifact and target, while covering every class of a small
data set several times; with 64 images one disagreement moves the top-1 agreement by 1.6
points. The same images go to the host, so target and host see identical bytes; an int8 input
is quantized by the runner with the model's own scale, the same on both.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.data import Preprocessing
from pipeline.datastore import sample_positions
from pipeline.layout import to_nchw

CHECK_IMAGES = 64


def select(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Sorted indices of `count` validation images (all when fewer), the same for every artifact."""
    return sample_positions(len(labels), count, seed)


def write(path: Path, x_val: np.ndarray, y_val: np.ndarray, preprocessing: dict, count: int = CHECK_IMAGES,
          seed: int = 0) -> int:
    """Write input_0 (n images, float32, NHWC or NCHW as the recipe says) and labels to `path`; returns n."""
    chosen = select(y_val, count, seed)
    prep = Preprocessing.from_dict(preprocessing)
    x = prep.apply(x_val[chosen]).astype(np.float32)
    if prep.layout == "NCHW":
        x = to_nchw(x)
    with open(path, "wb") as out:  # a file object: np.savez would append ".npz" to a bare name
        np.savez(out, input_0=np.ascontiguousarray(x), labels=y_val[chosen].astype(np.int64))
    return len(chosen)
