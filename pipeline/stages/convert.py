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
    sparse: bool = False  # store zero-heavy weights sparse (converters.tflite.sparse_storage): a sparsity variant's fp32


# A worker converts the same model in several precisions: load and trace it once per process
# (scripts/profile_convert.py: load + trace were about 12 % of a conversion's time).
_TRACED: dict[tuple[str, bool], tuple] = {}


def _traced_model(source: StageOutput, qat: bool):
    from pipeline.tf_import import tensorflow

    key = (source.key, qat)
    if key not in _TRACED:
        model = load_qat_model(source) if qat else load_float_model(source)
        _TRACED.clear()  # one model at a time: a worker's memory stays that of one model
        _TRACED[key] = (model, tflite.trace(tensorflow(), model))
    return _TRACED[key]


class ConvertStage(Stage):
    name = "convert"
    tools = (*TF_TOOLS, "tensorflow-model-optimization", "ai-edge-litert")
    Config = ConvertConfig

    def run(self, config: ConvertConfig, inputs: dict[str, StageOutput], workdir: Path) -> dict:
        preprocessing = Preprocessing.from_dict(config.preprocessing)
        model, function = _traced_model(inputs["model"], qat=config.precision == "int8-qat")
        calibration = None
        if config.precision in ("int8-ptq", "int8-qat"):
            calibration = preprocessing.apply(calibration_images(inputs["data"], config.calibration_images, config.seed))
        data = tflite.convert(model, config.precision, calibration, config.int8_io, function=function, sparse=config.sparse)
        stem = f"{config.model_name}_{config.precision}"
        artifact = tflite.write(data, workdir / f"{stem}.tflite")
        return write_recipe(
            workdir, stem, [artifact], model_name=config.model_name, fmt="tflite", precision=config.precision,
            io=litert.io_types(artifact), calibration_images=0 if calibration is None else int(len(calibration)),
            preprocessing=preprocessing.to_dict(), data=inputs["data"], source=inputs["model"], tools=self.tools,
        )
