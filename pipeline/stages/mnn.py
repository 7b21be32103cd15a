"""mnn_convert: an MNN artifact (.mnn) from the ONNX graph, in fp32, fp16 or int8 (converters/mnn.py).

From ONNX, not from the fp32 .tflite: MNN's quantizer crashed (segfault) on the model its converter
made from TFLite, and ONNX is the graph ncnn starts from too (docs/mnn.md). fp16 is half-precision
weight storage; int8 is MNN's own calibrated full int8 on the build's calibration images.
"""
from __future__ import annotations

from pathlib import Path

from converters import mnn as mnn_converter
from pipeline.data import Preprocessing
from pipeline.runtimes.mnn import precision_mode
from pipeline.stages.artifact import write_recipe
from pipeline.stages.base import Stage, StageConfig, StageOutput
from pipeline.stages.data import calibration_images

MNN_PRECISIONS = ("fp32", "fp16", "int8")


class MnnConvertConfig(StageConfig):
    model_name: str
    precision: str
    preprocessing: dict
    calibration_images: int
    seed: int
    calibration_method: str  # int8: converters.mnn.CALIBRATION_METHODS; "none" otherwise


class MnnConvertStage(Stage):
    name = "mnn_convert"
    tools = ("mnn", "onnx", "numpy")
    Config = MnnConvertConfig

    def run(self, config: MnnConvertConfig, inputs: dict[str, StageOutput], workdir: Path) -> dict:
        source = inputs["onnx"]
        onnx_path = source.path(source.result["file"])
        stem = f"{config.model_name}_{config.precision}"
        artifact = workdir / f"{stem}.mnn"
        preprocessing = Preprocessing.from_dict(config.preprocessing)
        calibrated, extra = 0, {}
        if config.precision == "int8":
            float_mnn = mnn_converter.convert(onnx_path, workdir / f"{stem}_float.mnn")
            images = calibration_images(inputs["data"], config.calibration_images, config.seed)
            mnn_converter.quantize(float_mnn, artifact, images, mean=preprocessing.mean, std=preprocessing.std,
                                   channel_order=preprocessing.channel_order, method=config.calibration_method, workdir=workdir)
            float_mnn.unlink()
            calibrated = int(len(images))
            extra["calibration_method"] = config.calibration_method
        else:
            mnn_converter.convert(onnx_path, artifact, fp16=config.precision == "fp16")
        return write_recipe(
            workdir, stem, [artifact], model_name=config.model_name, fmt="mnn", precision=config.precision,
            io={"input": "float32", "output": "float32"}, calibration_images=calibrated,
            preprocessing={**preprocessing.to_dict(), "layout": "NCHW"}, data=inputs["data"], source=source,
            tools=self.tools, runtime_options={"fp16": config.precision == "fp16", "precision_mode": precision_mode(config.precision)}, **extra,
        )
