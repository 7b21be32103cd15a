"""Automatic float fallback for an ncnn int8 model: keep its worst layers float until its top-1 on
held-out images is within a budget of the fp32 model's.

The layers go float one per round in the order given (worst isolated layer error first, from
converters/ncnn_layer_error.py), through the same mechanism as --ncnn-float-layers: the layer is
simply left out of the activation scales when the int8 model is written again. The other layers'
scales do not change (they were measured in the fp32 model), so no recalibration is needed.

At most FALLBACK_CAP_SHARE of the convolution / dense layers (at least one) go float: past that the
model is no longer an int8 model in any useful sense. When the cap is reached without meeting the
budget, the round with the best top-1 is kept (the fewest float layers on a tie).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from converters import ncnn as ncnn_converter
from pipeline.runtimes import ncnn as ncnn_runtime

FALLBACK_CAP_SHARE = 0.25
FALLBACK_MODES = ("auto", "off")


def top1(param: Path, weights: Path, precision: str, x_nchw: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 in percent of an ncnn model on the images."""
    outputs = ncnn_runtime.predict(param, weights, x_nchw, precision)
    return float((outputs.argmax(1) == labels).mean() * 100)


def cap(quantizable_layers: int) -> int:
    return max(1, math.floor(FALLBACK_CAP_SHARE * quantizable_layers))


def fallback(float_param: Path, float_bin: Path, scales: dict[str, float], ranked_layers: list[str],
             x_nchw: np.ndarray, labels: np.ndarray, budget_points: float,
             out_param: Path, out_bin: Path) -> dict:
    """`out_param`/`out_bin` hold the int8 model written with `scales`; when its top-1 is more than
    `budget_points` below fp32's, the layers of `ranked_layers` that are int8 go float one per
    round, and the files end up holding the chosen round's model. Returns the `fallback` record."""
    top1_float = top1(float_param, float_bin, "fp32", x_nchw, labels)
    top1_int8 = top1(out_param, out_bin, "int8", x_nchw, labels)
    record = {"budget_points": budget_points, "status": "not-needed", "float_layers": [],
              "top1_int8": top1_int8, "top1_float": top1_float, "top1_after": top1_int8, "rounds": []}
    if top1_float - top1_int8 <= budget_points:
        return record
    candidates = [name for name in ranked_layers if name in scales]
    limit = cap(len([l for l in ncnn_converter.read_param(float_param).layers if l.type in ncnn_converter.QUANTIZABLE]))
    best = (top1_int8, 0)  # (top-1, rounds taken)
    float_layers: list[str] = []
    for name in candidates[:limit]:
        float_layers.append(name)
        kept = {layer: s for layer, s in scales.items() if layer not in float_layers}
        ncnn_converter.write_int8(float_param, float_bin, kept, out_param, out_bin)
        accuracy = top1(out_param, out_bin, "int8", x_nchw, labels)
        record["rounds"].append({"float_layers": list(float_layers), "top1": accuracy,
                                 "size_bytes": out_param.stat().st_size + out_bin.stat().st_size})
        if accuracy > best[0]:
            best = (accuracy, len(float_layers))
        if top1_float - accuracy <= budget_points:
            record.update(status="met", float_layers=list(float_layers), top1_after=accuracy)
            return record
    record["status"] = "cap-reached"
    chosen = float_layers[: best[1]]
    if best[1] != len(float_layers):  # the files hold the last round: write the best one again
        ncnn_converter.write_int8(float_param, float_bin, {l: s for l, s in scales.items() if l not in chosen},
                                  out_param, out_bin)
    record.update(float_layers=chosen, top1_after=best[0])
    return record
