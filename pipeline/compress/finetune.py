"""The part of the sparsity and clustering stages that is the same: hold out, measure, fine-tune, measure, size."""
from __future__ import annotations

import math

from pipeline.compress.common import gzip_size, top1
from pipeline.models import training


def held_out(split, seed: int):
    """(images to fine-tune on, images to measure on): training.holdout's 10 % of each class, the
    images early stopping also holds out (never the validation split artifacts are scored on);
    (split, None) when a class is too small to give any."""
    parts = training.holdout(split, seed)
    return parts if parts is not None else (split, None)


def measured_top1(model, split, prep) -> float | None:
    return None if split is None else round(top1(model, split, prep), 4)


def steps(images: int, batch_size: int, epochs: int) -> int:
    return epochs * math.ceil(images / batch_size)


def gzip_sizes(model) -> dict[str, int]:
    """gzip-compressed bytes of the model's fp32 .tflite and its int8-weight (dynamic range) .tflite:
    the two figures tfmot's pruning and clustering guides compare. Zeros and shared values shrink
    only once compressed; the int8 artifacts of QAT are sized where they are built."""
    from converters import tflite

    return {precision: gzip_size(tflite.convert(model, precision)) for precision in ("fp32", "dynamic-int8")}
