"""ncnn_convert: an ncnn artifact (.ncnn.param + .ncnn.bin) from the ONNX graph, in fp32, fp16 or int8.

fp32 and fp16 are pnnx's output (fp16 = half-precision weight storage). int8 starts from the
fp32 conversion, calibrates activation scales on training images in ncnn itself, and writes
ncnn's own int8 format (converters/ncnn.py), so ncnn's loader runs those layers in int8.
"""
from __future__ import annotations

from pathlib import Path

from converters import ncnn as ncnn_converter
from converters import onnx as onnx_converter
from pipeline.data import Preprocessing
from pipeline.layout import to_nchw
from pipeline.stages.artifact import write_recipe
from pipeline.stages.base import Stage, StageConfig, StageOutput
from pipeline.stages.data import calibration_images

NCNN_PRECISIONS = ("fp32", "fp16", "int8")


class NcnnConvertConfig(StageConfig):
    model_name: str
    precision: str
    preprocessing: dict
    calibration_images: int
    seed: int
    calibration_method: str
    percentile: float
    float_layers: list[str]


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
            scales = ncnn_converter.calibrate(float_param, float_bin, x, config.calibration_method, config.percentile, float_layers)
            param, weights = workdir / f"{stem}.ncnn.param", workdir / f"{stem}.ncnn.bin"
            int8 = ncnn_converter.write_int8(float_param, float_bin, scales, param, weights)
            float_param.unlink()
            float_bin.unlink()
            calibrated = int(len(x))
            extra = {"int8_layers": int8, "float_layers_requested": sorted(float_layers),
                     "calibration_method": config.calibration_method}
        fixed.unlink()
        return write_recipe(
            workdir, stem, [param, weights], model_name=config.model_name, fmt="ncnn", precision=config.precision,
            io={"input": "float32", "output": "float32"}, calibration_images=calibrated,
            preprocessing={**preprocessing.to_dict(), "layout": "NCHW"}, data=inputs["data"], source=source,
            tools=self.tools, runtime_options={"fp16": fp16}, **extra,
        )
