"""onnx2tf / onnx_tflite: TFLite artifacts from an ONNX model (the path for `--model model.onnx`).

onnx2tf runs once per model and writes every precision it can (fp32, fp16 and, calibrated on
training images, dynamic-int8 and full-int8 PTQ with float I/O); onnx_tflite then packages
one precision as an artifact with its recipe, like `convert` does for Keras models.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from converters import tflite
from pipeline.data import Preprocessing
from pipeline.quant import tflite_layers
from pipeline.runtimes import litert
from pipeline.stages.artifact import write_recipe
from pipeline.stages.base import Stage, StageConfig, StageOutput
from pipeline.stages.data import calibration_images
from pipeline.stages.model import TF_TOOLS

ONNX_TFLITE_PRECISIONS = tuple(tflite.ONNX2TF_OUTPUTS)


class Onnx2TfConfig(StageConfig):
    preprocessing: dict
    quantize: bool
    calibration_images: int
    seed: int


class Onnx2TfStage(Stage):
    name = "onnx2tf"
    tools = (*TF_TOOLS, "onnx2tf", "onnx", "onnxsim", "ai-edge-litert")
    Config = Onnx2TfConfig

    def run(self, config: Onnx2TfConfig, inputs: dict[str, StageOutput], workdir: Path) -> dict:
        source = inputs["onnx"]
        calibration = None
        if config.quantize:
            preprocessing = Preprocessing.from_dict(config.preprocessing)
            calibration = preprocessing.apply(calibration_images(inputs["data"], config.calibration_images, config.seed))
        made = tflite.from_onnx(source.path(source.result["file"]), calibration, workdir)
        files = {}
        for precision, path in made.items():
            shutil.move(path, workdir / f"{precision}.tflite")
            files[precision] = f"{precision}.tflite"
        shutil.rmtree(workdir / "tf", ignore_errors=True)
        return {"files": files, "calibration_images": 0 if calibration is None else int(len(calibration))}


class OnnxTfliteConfig(StageConfig):
    model_name: str
    precision: str
    preprocessing: dict


class OnnxTfliteStage(Stage):
    name = "onnx_tflite"
    tools = ("ai-edge-litert",)
    Config = OnnxTfliteConfig

    def run(self, config: OnnxTfliteConfig, inputs: dict[str, StageOutput], workdir: Path) -> dict:
        converted = inputs["onnx2tf"]
        stem = f"{config.model_name}_{config.precision}"
        artifact = workdir / f"{stem}.tflite"
        shutil.copyfile(converted.path(converted.result["files"][config.precision]), artifact)
        is_int8 = config.precision == "int8-ptq"
        return write_recipe(
            workdir, stem, [artifact], model_name=config.model_name, fmt="tflite", precision=config.precision,
            io=litert.io_types(artifact), calibration_images=converted.result["calibration_images"] if is_int8 else 0,
            preprocessing=config.preprocessing, data=inputs["data"], source=inputs["onnx"],
            tools=(*self.tools, *Onnx2TfStage.tools), converter="onnx2tf",
            **({"layer_errors_note": tflite_layers.ONNX2TF_NOTE} if is_int8 else {}),
        )
