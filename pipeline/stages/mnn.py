"""mnn_convert: an MNN artifact (.mnn) from the ONNX graph, in fp32, fp16 or int8 (converters/mnn.py).

From ONNX, not from the fp32 .tflite: MNN's quantizer crashed (segfault) on the model its converter
made from TFLite, and ONNX is the graph ncnn starts from too (docs/mnn.md). fp16 is half-precision
weight storage; int8 is MNN's own calibrated full int8 on the build's calibration images.

Neither of mnnquant's activation methods suits every model (measured: EMA kept MobileNet V2 on
photographs at 99.5 % where KL fell to 71 %; KL kept SqueezeNet on the digits at 97.2 % where EMA
fell to 44 %), so `auto` quantizes with each and keeps the one whose int8 model agrees most with
the fp32 MNN model on training images calibration did not use (stages/data.decision_images).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from converters import mnn as mnn_converter
from pipeline.data import Preprocessing
from pipeline.layout import to_nchw
from pipeline.quant.int8_decision import DECISION_IMAGES
from pipeline.runtimes import mnn as mnn_runtime
from pipeline.stages.artifact import write_recipe
from pipeline.stages.base import Stage, StageConfig, StageOutput
from pipeline.stages.data import calibration_images, decision_images

class MnnConvertConfig(StageConfig):
    model_name: str
    precision: str
    preprocessing: dict
    calibration_images: int
    seed: int
    calibration_method: str  # int8: "auto" or one of converters.mnn.CALIBRATION_METHODS; "none" otherwise


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
            extra = self._quantize(config, inputs["data"], preprocessing, float_mnn, images, artifact, workdir)
            float_mnn.unlink()
            calibrated = int(len(images))
        else:
            mnn_converter.convert(onnx_path, artifact, fp16=config.precision == "fp16")
        return write_recipe(
            workdir, stem, [artifact], model_name=config.model_name, fmt="mnn", precision=config.precision,
            io={"input": "float32", "output": "float32"}, calibration_images=calibrated,
            preprocessing={**preprocessing.to_dict(), "layout": "NCHW"}, data=inputs["data"], source=source,
            tools=self.tools, runtime_options={"fp16": config.precision == "fp16",
                                               "precision_mode": mnn_runtime.precision_mode(config.precision)}, **extra,
        )

    @staticmethod
    def _quantize(config: MnnConvertConfig, data: StageOutput, preprocessing: Preprocessing, float_mnn: Path,
                  images: np.ndarray, artifact: Path, workdir: Path) -> dict:
        """The int8 artifact with the configured method, or for "auto" with each method, keeping the
        one that agrees most with the float model (the first listed on a tie); what was measured."""
        settings = dict(mean=preprocessing.mean, std=preprocessing.std, channel_order=preprocessing.channel_order, workdir=workdir)
        if config.calibration_method != "auto":
            mnn_converter.quantize(float_mnn, artifact, images, method=config.calibration_method, **settings)
            return {"calibration_method": config.calibration_method}
        check, _, _ = decision_images(data, config.calibration_images, DECISION_IMAGES, config.seed)
        held_out = len(check) > 0
        if not held_out:  # calibration took every training image: decide on those
            check = images
        x = to_nchw(preprocessing.apply(check))
        float_top1 = mnn_runtime.predictor(float_mnn)(x).argmax(1)
        agreement = {}
        for method in mnn_converter.CALIBRATION_METHODS:
            candidate = mnn_converter.quantize(float_mnn, workdir / f"{artifact.stem}_{method}.mnn", images, method=method, **settings)
            agreement[method] = float(np.mean(mnn_runtime.predictor(candidate)(x).argmax(1) == float_top1))
        best = max(agreement, key=agreement.get)
        (workdir / f"{artifact.stem}_{best}.mnn").rename(artifact)
        for method in agreement:
            (workdir / f"{artifact.stem}_{method}.mnn").unlink(missing_ok=True)
        return {"calibration_method": best, "calibration_methods": agreement,
                "int8_evaluation": {"images": int(len(x)), "held_out": held_out}}
