"""qat_check: is the int8-qat artifact worse than int8-ptq? Never ship a QAT that lost to PTQ.

Both TFLite files run in LiteRT on training images that neither calibration nor training used
(stages.data.held_out_images: early stopping's hold-out, which QAT's fine-tuning did not fit either,
so QAT's distillation toward the float model does not flatter its agreement; never the validation
split the report scores on), beside the float model QAT started from: top-1 on the labels and
top-1 agreement with the float model. QAT is worse when its (top-1, agreement) is lower than
PTQ's; the report then says so (models[].qat.versus_ptq) and the recommendation skips int8-qat.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.data import Preprocessing
from pipeline.resources import stage_threads
from pipeline.runtimes import litert
from pipeline.stages.base import Stage, StageConfig, StageOutput
from pipeline.stages.data import held_out_images
from pipeline.stages.model import TF_TOOLS, load_float_model


HELD_OUT_IMAGES = 256  # at most


class QatCheckConfig(StageConfig):
    preprocessing: dict
    calibration_images: int  # the calibration images both conversions used: not decided on
    seed: int


def worse(qat: dict, ptq: dict) -> bool:
    """QAT lost: lower top-1 on the labels, or the same top-1 and less agreement with the float model."""
    return (qat["top1"], qat["agreement"]) < (ptq["top1"], ptq["agreement"])


class QatCheckStage(Stage):
    name = "qat_check"
    tools = (*TF_TOOLS, "ai-edge-litert")
    Config = QatCheckConfig

    def run(self, config: QatCheckConfig, inputs: dict[str, StageOutput], workdir: Path) -> dict:
        images, labels = held_out_images(inputs["data"], config.calibration_images, HELD_OUT_IMAGES, config.seed)
        if len(images) == 0:
            return {"images": 0, "worse": False,
                    "note": "not compared: calibration took every training image (lower --calibration-images)"}
        x = Preprocessing.from_dict(config.preprocessing).apply(images)
        float_top1 = np.asarray(load_float_model(inputs["model"]).predict(x, batch_size=64, verbose=0)).argmax(1)
        figures = {}
        for name in ("qat", "ptq"):
            artifact = inputs[name]
            predicted = litert.predict(artifact.path(artifact.result["file"]), x, threads=stage_threads()).argmax(1)
            figures[name] = {"top1": float(np.mean(predicted == labels)), "agreement": float(np.mean(predicted == float_top1))}
        return {"images": int(len(labels)), **figures, "worse": worse(figures["qat"], figures["ptq"])}
