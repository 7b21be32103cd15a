"""convert: one TFLite artifact per precision, written beside the recipe that made it."""
from __future__ import annotations

from pathlib import Path

from converters import tflite
from pipeline.data import Preprocessing
from pipeline.runtimes import litert
from pipeline.stages.artifact import write_recipe
from pipeline.stages.base import Stage, StageConfig, StageOutput
from pipeline.stages.data import calibration_images
from pipeline.stages.model import TF_TOOLS, load_float_model
from pipeline.stages.qat import load_qat_model


class ConvertConfig(StageConfig):
    model_name: str
    precision: str
    int8_io: bool
    calibration_images: int
    seed: int
    preprocessing: dict


class ConvertStage(Stage):
    name = "convert"
    tools = (*TF_TOOLS, "tensorflow-model-optimization", "ai-edge-litert")
    Config = ConvertConfig

    def run(self, config: ConvertConfig, inputs: dict[str, StageOutput], workdir: Path) -> dict:
        preprocessing = Preprocessing.from_dict(config.preprocessing)
        if config.precision == "int8-qat":
            model = load_qat_model(inputs["model"])
        else:
            model = load_float_model(inputs["model"])
        calibration = None
        if config.precision in ("int8-ptq", "int8-qat"):
            calibration = preprocessing.apply(calibration_images(inputs["data"], config.calibration_images, config.seed))
        data = tflite.convert(model, config.precision, calibration, config.int8_io)
        stem = f"{config.model_name}_{config.precision}"
        artifact = tflite.write(data, workdir / f"{stem}.tflite")
        return write_recipe(
            workdir, stem, [artifact], model_name=config.model_name, fmt="tflite", precision=config.precision,
            io=litert.io_types(artifact), calibration_images=0 if calibration is None else int(len(calibration)),
            preprocessing=preprocessing.to_dict(), data=inputs["data"], source=inputs["model"], tools=self.tools,
        )
