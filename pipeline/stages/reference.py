"""reference: the float Keras model's accuracy and predictions on the validation split.

Every artifact is compared with these predictions (top-1 agreement).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.data import Preprocessing
from pipeline.models import training
from pipeline.stages.base import Stage, StageConfig, StageOutput
from pipeline.stages.data import load_split
from pipeline.stages.model import TF_TOOLS, load_float_model

PREDICTIONS_FILE = "val_predictions.npy"


class ReferenceConfig(StageConfig):
    preprocessing: dict


class ReferenceStage(Stage):
    name = "reference"
    tools = TF_TOOLS
    Config = ReferenceConfig

    def run(self, config: ReferenceConfig, inputs: dict[str, StageOutput], workdir: Path) -> dict:
        _, _, x_val, y_val = load_split(inputs["data"])
        model = load_float_model(inputs["model"])
        probs = training.predict(model, Preprocessing.from_dict(config.preprocessing).apply(x_val))
        np.save(workdir / PREDICTIONS_FILE, probs)
        return {"top1": float(np.mean(probs.argmax(1) == y_val)), "n": int(len(y_val))}


def reference_predictions(output: StageOutput) -> np.ndarray:
    return np.load(output.path(PREDICTIONS_FILE))
