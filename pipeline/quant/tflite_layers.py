"""Per-layer int8 error of a TFLite int8-ptq conversion, and the float fallback, with TensorFlow's
`tf.lite.experimental.QuantizationDebugger` (docs/int8.md).

The debugger calibrates on the artifact's own calibration images (the converter's representative
dataset) and measures on held-out training images: an error measured on the images that set the
ranges would flatter the ranges. Per layer it compares each quantized op's output with the same op
run in float on the dequantized inputs (its NumericVerify ops), so a layer's figure is its own error,
not the error it inherits. The fallback then keeps the worst layers in float through the
debugger's deny list, one more per round, until the model is within the budget of the float model
on the decision images (quant.int8_decision: agreement on a few hundred images, label top-1 beside).
"""
from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.quant.int8_decision import DecisionSet, Figures, round_record

FALLBACK_CAP = 5  # float layers at most: beyond a handful, the artifact is no longer an int8 model
# Only a broken layer is worth float: RMS error above one int8 step of its output (rounding alone is
# ~0.3). On the photo set a lost image came back only with 5 healthy layers (nrmse <= 0.38) in float.
BROKEN_NRMSE = 1.0
DEBUG_IMAGES = 256  # the per-layer statistics need fewer images than the decision
QAT_NOTE = ("no per-layer figure: TensorFlow's QuantizationDebugger cannot instrument a QAT model (its fake-quant "
            "ranges make the converter emit already-quantized ops, so the debug model has no NumericVerify op to "
            "compare: 'Please check if the quantized model is in debug mode')")

ONNX2TF_NOTE = ("no per-layer figure: onnx2tf converted this model (ONNX input) and TensorFlow's QuantizationDebugger "
                "needs the TFLiteConverter that quantizes it")


def _cosine(float_out: np.ndarray, quant_out: np.ndarray, scale: float, zero_point: int) -> float:
    """Cosine similarity of the float output and the dequantized int8 output of one layer, one image."""
    f = float_out.astype(np.float64).ravel()
    q = (quant_out.astype(np.float64).ravel() - zero_point) * scale
    norm = np.linalg.norm(f) * np.linalg.norm(q)
    return float(f @ q / norm) if norm else np.nan


def _direct_mse(float_out: np.ndarray, quant_out: np.ndarray, scale: float, zero_point: int) -> float:
    """The debugger's mean squared error recomputed from the tensors the cosine used: where the two
    disagree, the float tensor the debugger kept is not the one it compared, and the cosine is dropped."""
    q = (quant_out.astype(np.float64) - zero_point) * scale
    return float(np.mean((q - float_out.astype(np.float64)) ** 2))


def debugger(converter, held_out: np.ndarray):
    """The debugger for a converter set up for int8-ptq (its representative dataset: the calibration
    images); `held_out`: float, preprocessed images it measures on."""
    from pipeline.tf_import import tensorflow

    tf = tensorflow()

    def dataset():
        for image in held_out:
            yield [image[None].astype(np.float32)]

    options = tf.lite.experimental.QuantizationDebugOptions(
        layer_direct_compare_metrics={"cosine": _cosine, "direct_mse": _direct_mse})
    return tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=dataset, debug_options=options)


def layer_errors(debug) -> tuple[list[dict], str]:
    """Run the debugger: (one row per quantized layer, worst first; the debugger's own CSV of stats).

    nrmse is the RMSE of the layer's output in units of its int8 step (rmse / scale), as TensorFlow's
    debugger guide ranks layers: about 0.3 is rounding alone, far above 1 a layer that int8 breaks.
    """
    debug.run()
    dump = io.StringIO()
    debug.layer_statistics_dump(dump)
    rows = []
    for stats in csv.DictReader(io.StringIO(dump.getvalue())):
        mse, scale = float(stats["mean_squared_error"]), float(stats["scale"])
        cosine = float(stats["cosine"])
        consistent = np.isclose(float(stats["direct_mse"]), mse, rtol=0.05, atol=1e-9)
        rows.append({
            "layer": stats["tensor_name"], "op": stats["op_name"],
            "nrmse": float(np.sqrt(mse) / scale) if scale else float("inf"),
            "max_abs": float(stats["max_abs_error"]),
            "cosine": round(cosine, 6) if consistent and np.isfinite(cosine) else None,
        })
    rows.sort(key=lambda r: -r["nrmse"])
    return rows, dump.getvalue()


def predict(model_bytes: bytes, images: np.ndarray, scratch: Path) -> np.ndarray:
    """Outputs of a .tflite model run in LiteRT (the runtime that ships it)."""
    from pipeline.runtimes import litert

    scratch.write_bytes(model_bytes)
    try:
        return litert.predict(scratch, images)
    finally:
        scratch.unlink(missing_ok=True)


def fallback(debug, plain: bytes, layers: list[dict], decision: DecisionSet, images: np.ndarray,
             *, budget_points: float, mode: str, int8_io: bool, scratch: Path) -> tuple[dict, bytes]:
    """Keep the worst layers in float until the int8 model is within `budget_points` of the float
    model on the decision images (`decision.within`), or FALLBACK_CAP layers are float. Only broken
    layers (nrmse >= BROKEN_NRMSE) are candidates: with none, the plain model ships ("no-broken-layer").

    Returns the fallback record and the model to ship: the plain conversion when it is within budget
    (or the fallback is off); else the first round within budget; at the cap, the round nearest the
    float model (fewest float layers on a tie), or the plain model when no round beat it.
    """
    from pipeline.tf_import import tensorflow

    tf = tensorflow()

    measured = decision.measure(predict(plain, images, scratch))
    rounds = [round_record([], measured, len(plain))]

    def record(status: str, float_layers: list[str], after: Figures) -> dict:
        return decision.record(budget_points, status, float_layers, measured, after, rounds)

    if mode == "off":
        return record("off", [], measured), plain
    if decision.within(measured, budget_points):
        return record("not-needed", [], measured), plain
    layers = [row for row in layers if row["nrmse"] >= BROKEN_NRMSE]
    if not layers:  # the loss is spread over healthy layers, or noise: float layers would not buy it back
        return record("no-broken-layer", [], measured), plain
    best = (decision.loss_points(measured), 0, plain, measured)
    for count in range(1, min(FALLBACK_CAP, len(layers)) + 1):
        denied = [row["layer"] for row in layers[:count]]
        debug.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=denied, fully_quantize=int8_io)
        model = debug.get_nondebug_quantized_model()
        figures = decision.measure(predict(model, images, scratch))
        rounds.append(round_record(denied, figures, len(model)))
        if decision.within(figures, budget_points):
            return record("met", denied, figures), model
        if decision.loss_points(figures) < best[0]:
            best = (decision.loss_points(figures), count, model, figures)
    _, count, model, figures = best
    return record("cap-reached", [row["layer"] for row in layers[:count]], figures), model


def analyse(converter, plain: bytes, predict_float: Callable[[np.ndarray], np.ndarray], images: np.ndarray,
            labels: np.ndarray, never_fitted: np.ndarray, *, budget_points: float, mode: str, int8_io: bool,
            scratch: Path) -> dict:
    """Per-layer errors (on the first DEBUG_IMAGES of `images`) and the fallback decision (on all of
    them: quant.int8_decision) for one int8-ptq conversion. `images`: float, preprocessed.

    Returns {"layer_errors", "stats_csv", "fallback", "model"}: `model` is the .tflite to ship.
    """
    debug = debugger(converter, images[:DEBUG_IMAGES])
    rows, stats_csv = layer_errors(debug)
    decision = DecisionSet.of(predict_float(images), labels, never_fitted)
    record, model = fallback(debug, plain, rows, decision, images, budget_points=budget_points,
                             mode=mode, int8_io=int8_io, scratch=scratch)
    return {"layer_errors": rows, "stats_csv": stats_csv, "fallback": record, "model": model}
