"""reference: the float model's accuracy and predictions on the validation split.

Every artifact is compared with these predictions (top-1 agreement). A Keras model runs in
tf_keras; an ONNX model runs in onnxruntime, as the original file, so every artifact made
from it is compared with the model the user gave.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.data import Preprocessing
from pipeline.layout import to_nchw
from pipeline.models import training
from pipeline.stages.base import Stage, StageConfig, StageOutput
from pipeline.stages.data import load_split
from pipeline.stages.model import TF_TOOLS, load_float_model

PREDICTIONS_FILE = "val_predictions.npy"


class ReferenceConfig(StageConfig):
    preprocessing: dict


class ReferenceStage(Stage):
    name = "reference"
    tools = (*TF_TOOLS, "onnxruntime")
    Config = ReferenceConfig

    def run(self, config: ReferenceConfig, inputs: dict[str, StageOutput], workdir: Path) -> dict:
        _, _, x_val, y_val = load_split(inputs["data"])
        x = Preprocessing.from_dict(config.preprocessing).apply(x_val)
        probs = float_predictions(inputs["model"], x)
        np.save(workdir / PREDICTIONS_FILE, probs)
        return {"top1": float(np.mean(probs.argmax(1) == y_val)), "n": int(len(y_val))}


def float_predictions(model: StageOutput, x: np.ndarray) -> np.ndarray:
    """The float model's outputs for preprocessed NHWC images, in the model's own runtime."""
    if model.result.get("format") == "onnx":
        from pipeline.runtimes import onnxruntime as ort_runtime

        return ort_runtime.predict(model.path(model.result["model_file"]), to_nchw(x))
    return training.predict(load_float_model(model), x)


def reference_predictions(output: StageOutput) -> np.ndarray:
    return np.load(output.path(PREDICTIONS_FILE))
