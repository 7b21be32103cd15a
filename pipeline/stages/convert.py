"""convert: one TFLite artifact per precision, written beside the recipe that made it."""
from __future__ import annotations

import logging
from pathlib import Path

from converters import tflite
from pipeline.data import Preprocessing
from pipeline.quant import tflite_layers
from pipeline.quant.int8_decision import DECISION_IMAGES
from pipeline.runtimes import litert
from pipeline.stages.artifact import write_recipe
from pipeline.stages.base import Stage, StageConfig, StageOutput
from pipeline.stages.data import calibration_images, decision_images
from pipeline.stages.model import TF_TOOLS, load_float_model
from pipeline.stages.qat import load_qat_model


log = logging.getLogger(__name__)


class ConvertConfig(StageConfig):
    model_name: str
    precision: str
    int8_io: bool
    calibration_images: int
    seed: int
    preprocessing: dict
    # int8-ptq: keep the worst layers in float while int8 loses more than this many top-1 points (docs/int8.md)
    int8_fallback: str = "auto"
    int8_budget: float = 0.5
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
        extra = {}
        if config.precision == "int8-ptq":
            data, extra = _int8_layers(config, model, function, calibration, data, inputs["data"], preprocessing, workdir, stem)
        elif config.precision == "int8-qat":
            extra = {"layer_errors_note": tflite_layers.QAT_NOTE}
        artifact = tflite.write(data, workdir / f"{stem}.tflite")
        return write_recipe(
            workdir, stem, [artifact], model_name=config.model_name, fmt="tflite", precision=config.precision,
            io=litert.io_types(artifact), calibration_images=0 if calibration is None else int(len(calibration)),
            preprocessing=preprocessing.to_dict(), data=inputs["data"], source=inputs["model"], tools=self.tools, **extra,
        )


def _int8_layers(config, model, function, calibration, plain: bytes, data: StageOutput, preprocessing, workdir: Path,
                 stem: str) -> tuple[bytes, dict]:
    """Per-layer error and float fallback of an int8-ptq conversion: (the model to ship, recipe fields).
    The debugger's own per-layer statistics go beside the artifact as <stem>.layers.csv."""
    images, labels, never_fitted = decision_images(data, config.calibration_images, DECISION_IMAGES, config.seed)
    if len(images) == 0:
        return plain, {"layer_errors_note": "no per-layer figure: calibration took every training image, none is "
                                            "left to measure on (lower --calibration-images)"}
    try:
        found = tflite_layers.analyse(
            tflite.make_converter(model, "int8-ptq", calibration, config.int8_io, function=function), plain,
            lambda x: model.predict(x, batch_size=64, verbose=0), preprocessing.apply(images), labels, never_fitted,
            budget_points=config.int8_budget, mode=config.int8_fallback, int8_io=config.int8_io,
            scratch=workdir / f"{stem}.round.tflite")
    except Exception as e:  # the debugger is a diagnosis: when it fails, the plain artifact still ships
        why = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        log.warning("%s: quantization debugger failed, no per-layer figure: %s", stem, why)
        return plain, {"layer_errors_note": f"no per-layer figure: the quantization debugger failed ({why})"}
    (workdir / f"{stem}.layers.csv").write_text(found["stats_csv"])
    fallback = found["fallback"]
    return found["model"], {"layer_errors": found["layer_errors"], "fallback": fallback,
                            "float_layers_requested": fallback["float_layers"]}
