"""verify: run an artifact in its own runtime on the validation split; for int8, prove what computes in int8.

TFLite runs in LiteRT (NHWC), ncnn in ncnn's Python runtime and ONNX in onnxruntime (both NCHW).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.data import Preprocessing
from pipeline.layout import to_nchw
from pipeline.runtimes import litert
from pipeline.stages.base import Stage, StageConfig, StageOutput
from pipeline.stages.data import load_split
from pipeline.stages.reference import reference_predictions


class VerifyConfig(StageConfig):
    preprocessing: dict
    check_int8: bool


class VerifyStage(Stage):
    name = "verify"
    tools = ("ai-edge-litert", "ncnn", "onnxruntime", "numpy")
    Config = VerifyConfig

    def run(self, config: VerifyConfig, inputs: dict[str, StageOutput], workdir: Path) -> dict:
        artifact = inputs["artifact"]
        _, _, x_val, y_val = load_split(inputs["data"])
        x = Preprocessing.from_dict(config.preprocessing).apply(x_val)
        outputs = predict(artifact, x)
        reference_outputs = reference_predictions(inputs["reference"])
        predicted, reference = outputs.argmax(1), reference_outputs.argmax(1)
        result = {
            "top1": float(np.mean(predicted == y_val)),
            "agreement": float(np.mean(predicted == reference)),
            "max_abs_diff": float(np.abs(outputs - reference_outputs).max()),
            "n": int(len(y_val)),
            "int8_check": None,
        }
        if config.check_int8:
            float_ops = float_compute(artifact)
            result["int8_check"] = {"fully_int8": not float_ops, "float_ops": float_ops}
        return result


def predict(artifact: StageOutput, x_nhwc: np.ndarray) -> np.ndarray:
    path = artifact.path(artifact.result["file"])
    fmt = artifact.result["format"]
    if fmt == "tflite":
        return litert.predict(path, x_nhwc)
    x_nchw = to_nchw(x_nhwc)
    if fmt == "ncnn":
        from pipeline.runtimes import ncnn as ncnn_runtime

        weights = artifact.path(artifact.result["files"][1])
        return ncnn_runtime.predict(path, weights, x_nchw, artifact.result["precision"])
    if fmt == "onnx":
        from pipeline.runtimes import onnxruntime as ort_runtime

        return ort_runtime.predict(path, x_nchw)
    raise ValueError(f"unknown artifact format {fmt!r}")


def float_compute(artifact: StageOutput) -> list[str]:
    """TFLite: ops computing in float. ncnn: convolution / dense layers left in float that were
    not asked to stay float (ncnn runs pooling, eltwise and softmax in float by design)."""
    path = artifact.path(artifact.result["file"])
    if artifact.result["format"] == "tflite":
        return litert.float_compute_ops(path)
    from converters import ncnn as ncnn_converter

    _, float_layers = ncnn_converter.int8_layers(path)
    kept = set(artifact.result.get("float_layers_requested", []))
    return [name for name in float_layers if name not in kept]
