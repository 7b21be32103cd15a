"""The part of the sparsity and clustering stages that is the same: hold out, measure, fine-tune, measure, size."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from pipeline.compress.common import gzip_size, top1
from pipeline.data import Preprocessing
from pipeline.datastore import Split
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


def epochs_for(images: int, batch_size: int, epochs: int, min_steps: int) -> int:
    """`epochs`, or more when that many epochs of `images` make fewer than `min_steps` steps."""
    return max(epochs, math.ceil(min_steps / max(1, steps(images, batch_size, 1))))


def gzip_sizes(model) -> dict[str, int]:
    """gzip-compressed bytes of the model's fp32 .tflite and its int8-weight (dynamic range) .tflite:
    the two figures tfmot's pruning and clustering guides compare. Zeros and shared values shrink
    only once compressed; the int8 artifacts of QAT are sized where they are built."""
    from converters import tflite

    return {precision: gzip_size(tflite.convert(model, precision)) for precision in ("fp32", "dynamic-int8")}


@dataclass(frozen=True)
class Start:
    """What both stages begin with: the float model, its preprocessing, the split in two, top-1 before."""

    dense: object
    prep: Preprocessing
    fit: Split
    stop: Split | None
    before: float | None


def start(inputs: dict, preprocessing: dict, seed: int) -> Start:
    from pipeline.stages.data import open_split
    from pipeline.stages.model import load_float_model

    dense = load_float_model(inputs["model"])
    prep = Preprocessing.from_dict(preprocessing)
    fit, stop = held_out(open_split(inputs["data"], "train"), seed)
    return Start(dense, prep, fit, stop, measured_top1(dense, stop, prep))


def finish(begun: Start, model, workdir: Path, history: list, config, **specific) -> dict:
    """Save the stripped model as the train stage does and return the stage result both stages share."""
    from pipeline.stages.model import model_facts

    model.save(workdir / "model.keras")
    return {
        "model_file": "model.keras", "trusted": False, "history": history, "augment": config.augment, **specific,
        "held_out_images": 0 if begun.stop is None else len(begun.stop),
        "top1_before": begun.before, "top1_after": measured_top1(model, begun.stop, begun.prep),
        "gzip_bytes": {"dense": gzip_sizes(begun.dense), "compressed": gzip_sizes(model)} if config.gzip_sizes else None,
        **model_facts(model),
    }
