"""verify: run an artifact in its own runtime on the validation split; for int8, prove what computes in int8.

TFLite runs in LiteRT (NHWC), ncnn in ncnn's Python runtime, ONNX in onnxruntime and MNN in MNN's
Python runtime (NCHW).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.data import Preprocessing
from pipeline.resources import stage_threads
from pipeline.layout import to_nchw
from pipeline.runtimes import litert
from pipeline.stages.base import Stage, StageOutput
from pipeline.stages.data import predict_split, ValidationSampleConfig, validation_split
from pipeline.stages.reference import reference_predictions


class VerifyConfig(ValidationSampleConfig):
    preprocessing: dict
    check_int8: bool


class VerifyStage(Stage):
    name = "verify"
    tools = ("ai-edge-litert", "ncnn", "onnxruntime", "mnn", "numpy")
    Config = VerifyConfig

    def run(self, config: VerifyConfig, inputs: dict[str, StageOutput], workdir: Path) -> dict:
        artifact = inputs["artifact"]
        val = validation_split(inputs["data"], config.val_max_images, config.seed)
        y_val = val.labels
        outputs = predict_split(predictor(artifact, stage_threads()), val, Preprocessing.from_dict(config.preprocessing),
                                f"verify {artifact.result['format']} {artifact.result['precision']}")
        reference_outputs = reference_predictions(inputs["reference"])
        if len(reference_outputs) != len(outputs):
            raise ValueError(f"the reference measured {len(reference_outputs)} images, verify {len(outputs)}: different --val-max-images")
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


def predictor(artifact: StageOutput, threads: int | None = None):
    """The artifact loaded once in its own runtime, as a function: float NHWC batch -> outputs.
    threads: the runtime's thread count (None: the runtime's default)."""
    path = artifact.path(artifact.result["file"])
    fmt = artifact.result["format"]
    if fmt == "tflite":
        return litert.predictor(path, threads=threads)
    if fmt == "ncnn":
        from pipeline.runtimes import ncnn as ncnn_runtime

        weights = artifact.path(artifact.result["files"][1])
        net = ncnn_runtime.predictor(path, weights, artifact.result["precision"], threads or 1)
        return lambda x_nhwc: net(to_nchw(x_nhwc))
    if fmt == "onnx":
        from pipeline.runtimes import onnxruntime as ort_runtime

        session = ort_runtime.predictor(path, threads)
        return lambda x_nhwc: session(to_nchw(x_nhwc))
    if fmt == "mnn":
        from pipeline.runtimes import mnn as mnn_runtime

        mnn_session = mnn_runtime.predictor(path, artifact.result["precision"], threads or 1)
        return lambda x_nhwc: mnn_session(to_nchw(x_nhwc))
    raise ValueError(f"unknown artifact format {fmt!r}")


def float_compute(artifact: StageOutput) -> list[str]:
    """TFLite: ops computing in float, but for the layers the int8 fallback kept in float. ncnn: convolution / dense layers left in float that were
    not asked to stay float (ncnn runs pooling, eltwise and softmax in float by design). MNN: convolution / dense ops not int8."""
    path = artifact.path(artifact.result["file"])
    kept = artifact.result.get("float_layers_requested", [])  # kept in float on purpose (--ncnn-float-layers, the int8 fallback)
    if artifact.result["format"] == "tflite":
        return litert.float_compute_ops(path, kept)
    if artifact.result["format"] == "mnn":
        from converters import mnn as mnn_converter

        return mnn_converter.float_ops(path)
    from converters import ncnn as ncnn_converter

    _, float_layers = ncnn_converter.int8_layers(path)
    kept = set(kept)
    return [name for name in float_layers if name not in kept]
