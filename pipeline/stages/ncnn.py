"""ncnn_convert: an ncnn artifact (.ncnn.param + .ncnn.bin) from the ONNX graph, in fp32, fp16 or int8.

fp32 and fp16 are pnnx's output (fp16 = half-precision weight storage). int8 starts from the
fp32 conversion, calibrates activation scales on training images in ncnn itself, and writes
ncnn's own int8 format (converters/ncnn.py), so ncnn's loader runs those layers in int8.
Then, on training images calibration did not use: each layer's isolated int8 error
(converters/ncnn_layer_error.py) and, with int8_fallback "auto", the float fallback
(converters/ncnn_fallback.py) that keeps the worst layers float until it is within budget of fp32
(pipeline/quant/int8_decision.py).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from converters import ncnn as ncnn_converter
from converters import ncnn_fallback
from converters.ncnn_layer_error import best_scales_per_layer, layer_errors
from pipeline import calibration
from converters import onnx as onnx_converter
from pipeline.data import Preprocessing
from pipeline.layout import to_nchw
from pipeline.quant.int8_decision import DECISION_IMAGES
from pipeline.stages.artifact import write_recipe
from pipeline.stages.base import Stage, StageConfig, StageOutput
from pipeline.stages.data import calibration_images, decision_images

NCNN_PRECISIONS = ("fp32", "fp16", "int8")
LAYER_ERROR_IMAGES = 32  # of the decision images, for the per-layer errors (one ncnn run per layer and image)


class NcnnConvertConfig(StageConfig):
    model_name: str
    precision: str
    preprocessing: dict
    calibration_images: int
    seed: int
    calibration_method: str
    percentile: float
    float_layers: list[str]
    int8_fallback: str = "off"  # "auto" | "off"
    int8_budget: float = 1.0  # quant.int8_decision: how far int8 may be from fp32 before the fallback acts


class NcnnConvertStage(Stage):
    name = "ncnn_convert"
    tools = ("pnnx", "ncnn", "onnx", "onnxoptimizer", "numpy")
    Config = NcnnConvertConfig

    def run(self, config: NcnnConvertConfig, inputs: dict[str, StageOutput], workdir: Path) -> dict:
        source = inputs["onnx"]
        proto = ncnn_converter.prepare_for_pnnx(onnx_converter.load(source.path(source.result["file"])))
        fixed = onnx_converter.save(proto, workdir / "pnnx_input.onnx")
        sig = onnx_converter.signature(proto, fixed, None)
        stem = f"{config.model_name}_{config.precision}"
        preprocessing = Preprocessing.from_dict(config.preprocessing)
        fp16 = config.precision == "fp16"
        param, weights = ncnn_converter.convert(fixed, sig.input_shape, fp16, workdir, stem if config.precision != "int8" else f"{stem}_float")
        extra, calibrated = {}, 0
        if config.precision == "int8":
            float_param, float_bin = param, weights
            float_layers = ncnn_converter.resolve_float_layers(
                ncnn_converter.read_param(float_param), config.float_layers, config.model_name)
            x = to_nchw(preprocessing.apply(calibration_images(inputs["data"], config.calibration_images, config.seed)))
            scales, chosen = self._calibrate(config, float_param, float_bin, x, float_layers, workdir)
            param, weights = workdir / f"{stem}.ncnn.param", workdir / f"{stem}.ncnn.bin"
            ncnn_converter.write_int8(float_param, float_bin, scales, param, weights)
            calibrated = int(len(x))
            extra = self._check_int8(config, inputs["data"], preprocessing, float_param, float_bin, scales, param, weights, workdir)
            extra["float_layers_requested"] = sorted(float_layers | set((extra["fallback"] or {}).get("float_layers", [])))
            extra["int8_layers"], _ = ncnn_converter.int8_layers(param)
            extra["calibration_method"] = config.calibration_method
            if chosen:
                extra["calibration_methods"] = chosen
            float_param.unlink()
            float_bin.unlink()
        fixed.unlink()
        return write_recipe(
            workdir, stem, [param, weights], model_name=config.model_name, fmt="ncnn", precision=config.precision,
            io={"input": "float32", "output": "float32"}, calibration_images=calibrated,
            preprocessing={**preprocessing.to_dict(), "layout": "NCHW"}, data=inputs["data"], source=source,
            tools=self.tools, runtime_options={"fp16": fp16}, **extra,
        )

    @staticmethod
    def _calibrate(config: NcnnConvertConfig, float_param: Path, float_bin: Path, x, float_layers: set[str],
                   workdir: Path) -> tuple[dict[str, float], dict[str, str]]:
        """Activation scales; for "auto", per layer the candidate method whose scale gives that
        layer the least isolated int8 error on (up to LAYER_ERROR_IMAGES of) the calibration images."""
        if config.calibration_method != "auto":
            return ncnn_converter.calibrate(float_param, float_bin, x, config.calibration_method, config.percentile, float_layers), {}
        candidates = ncnn_converter.calibrate_methods(float_param, float_bin, x, list(calibration.AUTO_CANDIDATES),
                                                      config.percentile, float_layers)
        return best_scales_per_layer(float_param, float_bin, candidates, x[:LAYER_ERROR_IMAGES], workdir)

    @staticmethod
    def _check_int8(config: NcnnConvertConfig, data: StageOutput, preprocessing: Preprocessing, float_param: Path,
                    float_bin: Path, scales: dict[str, float], param: Path, weights: Path, workdir: Path) -> dict:
        """Per-layer errors and the float fallback, on training images calibration did not use
        (on the calibration images themselves when it used them all; `int8_evaluation` says which)."""
        images, labels, never_fitted = decision_images(data, config.calibration_images, DECISION_IMAGES, config.seed)
        held_out = len(images) > 0
        if not held_out:
            images, labels, never_fitted = decision_images(data, 0, DECISION_IMAGES, config.seed)
        x = to_nchw(preprocessing.apply(images))
        errors = layer_errors(float_param, float_bin, param, weights, x[:LAYER_ERROR_IMAGES], workdir)
        if config.int8_fallback == "off":
            record = None  # nothing measured: the report's fallback field stays empty
        else:
            ranked = [row["layer"] for row in errors if row["op"] in ncnn_converter.QUANTIZABLE]
            record = ncnn_fallback.fallback(float_param, float_bin, scales, ranked, x, labels, never_fitted, config.int8_budget,
                                            param, weights)
        return {"layer_errors": errors, "fallback": record,
                "int8_evaluation": {"images": int(len(x)), "layer_error_images": int(min(len(x), LAYER_ERROR_IMAGES)),
                                    "held_out": held_out}}
