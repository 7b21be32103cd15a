"""Automatic float fallback for an ncnn int8 model: keep its worst layers float until it is within a
budget of the fp32 model on the decision images (pipeline/quant/int8_decision.py: agreement on a few
hundred training images, label top-1 on the never-fitted ones beside).

The layers go float one per round in the order given (worst isolated layer error first, from
converters/ncnn_layer_error.py), through the same mechanism as --ncnn-float-layers: the layer is
simply left out of the activation scales when the int8 model is written again. The other layers'
scales do not change (they were measured in the fp32 model), so no recalibration is needed.

At most FALLBACK_CAP_SHARE of the convolution / dense layers (at least one) go float: past that the
model is no longer an int8 model in any useful sense. When the cap is reached without meeting the
budget, the round nearest the fp32 model is kept (the fewest float layers on a tie).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from converters import ncnn as ncnn_converter
from pipeline.quant.int8_decision import DecisionSet, Figures, round_record
from pipeline.runtimes import ncnn as ncnn_runtime

FALLBACK_CAP_SHARE = 0.25
FALLBACK_MODES = ("auto", "off")


def cap(quantizable_layers: int) -> int:
    return max(1, math.floor(FALLBACK_CAP_SHARE * quantizable_layers))


def fallback(float_param: Path, float_bin: Path, scales: dict[str, float], ranked_layers: list[str],
             x_nchw: np.ndarray, labels: np.ndarray, never_fitted: np.ndarray, budget_points: float,
             out_param: Path, out_bin: Path) -> dict:
    """`out_param`/`out_bin` hold the int8 model written with `scales`; when it is not within
    `budget_points` of the fp32 model on the decision images (`x_nchw`: quant.int8_decision), the
    layers of `ranked_layers` that are int8 go float one per round, and the files end up holding the
    chosen round's model. Returns the `fallback` record (schema.Int8Fallback)."""
    decision = DecisionSet.of(ncnn_runtime.predict(float_param, float_bin, x_nchw, "fp32"), labels, never_fitted)
    measured = decision.measure(ncnn_runtime.predict(out_param, out_bin, x_nchw, "int8"))
    rounds: list[dict] = []

    def record(status: str, float_layers: list[str], after: Figures) -> dict:
        return decision.record(budget_points, status, float_layers, measured, after, rounds)

    if decision.within(measured, budget_points):
        return record("not-needed", [], measured)
    candidates = [name for name in ranked_layers if name in scales]
    limit = cap(len([l for l in ncnn_converter.read_param(float_param).layers if l.type in ncnn_converter.QUANTIZABLE]))
    best = (decision.loss_points(measured), 0, measured)  # (loss, rounds taken, figures)
    float_layers: list[str] = []
    for name in candidates[:limit]:
        float_layers.append(name)
        kept = {layer: s for layer, s in scales.items() if layer not in float_layers}
        ncnn_converter.write_int8(float_param, float_bin, kept, out_param, out_bin)
        figures = decision.measure(ncnn_runtime.predict(out_param, out_bin, x_nchw, "int8"))
        rounds.append(round_record(list(float_layers), figures, out_param.stat().st_size + out_bin.stat().st_size))
        if decision.within(figures, budget_points):
            return record("met", list(float_layers), figures)
        if decision.loss_points(figures) < best[0]:
            best = (decision.loss_points(figures), len(float_layers), figures)
    chosen = float_layers[: best[1]]
    if best[1] != len(float_layers):  # the files hold the last round: write the best one again
        ncnn_converter.write_int8(float_param, float_bin, {l: s for l, s in scales.items() if l not in chosen},
                                  out_param, out_bin)
    return record("cap-reached", chosen, best[2])
