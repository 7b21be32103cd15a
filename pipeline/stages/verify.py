"""verify: run an artifact in LiteRT on the validation split; for int8, prove no float compute is left."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.data import Preprocessing
from pipeline.runtimes import litert
from pipeline.stages.base import Stage, StageConfig, StageOutput
from pipeline.stages.data import load_split
from pipeline.stages.reference import reference_predictions


class VerifyConfig(StageConfig):
    preprocessing: dict
    check_int8: bool


class VerifyStage(Stage):
    name = "verify"
    tools = ("ai-edge-litert", "numpy")
    Config = VerifyConfig

    def run(self, config: VerifyConfig, inputs: dict[str, StageOutput], workdir: Path) -> dict:
        artifact = inputs["artifact"]
        _, _, x_val, y_val = load_split(inputs["data"])
        x = Preprocessing.from_dict(config.preprocessing).apply(x_val)
        predicted = litert.predict(artifact.path(artifact.result["file"]), x).argmax(1)
        reference = reference_predictions(inputs["reference"]).argmax(1)
        result = {
            "top1": float(np.mean(predicted == y_val)),
            "agreement": float(np.mean(predicted == reference)),
            "n": int(len(y_val)),
            "int8_check": None,
        }
        if config.check_int8:
            float_ops = litert.float_compute_ops(artifact.path(artifact.result["file"]))
            result["int8_check"] = {"fully_int8": not float_ops, "float_ops": float_ops}
        return result
