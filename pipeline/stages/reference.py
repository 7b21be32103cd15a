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
from pipeline.stages.base import Stage, StageOutput
from pipeline.stages.data import predict_split, ValidationSampleConfig, validation_split
from pipeline.stages.model import TF_TOOLS, load_float_model

PREDICTIONS_FILE = "val_predictions.npy"


class ReferenceConfig(ValidationSampleConfig):
    preprocessing: dict


class ReferenceStage(Stage):
    name = "reference"
    tools = (*TF_TOOLS, "onnxruntime")
    Config = ReferenceConfig

    def run(self, config: ReferenceConfig, inputs: dict[str, StageOutput], workdir: Path) -> dict:
        val = validation_split(inputs["data"], config.val_max_images, config.seed)
        probs = predict_split(float_predictor(inputs["model"]), val, Preprocessing.from_dict(config.preprocessing), "reference")
        np.save(workdir / PREDICTIONS_FILE, probs)
        return {"top1": float(np.mean(probs.argmax(1) == val.labels)), "n": int(len(val)),
                "val_total": int(inputs["data"].result["val"])}


def float_predictor(model: StageOutput):
    """The float model as a function of preprocessed NHWC batches, in the model's own runtime
    (loaded once: the reference and the preprocessing probe call it batch after batch)."""
    if model.result.get("format") == "onnx":
        from pipeline.runtimes import onnxruntime as ort_runtime

        session = ort_runtime.predictor(model.path(model.result["model_file"]))
        return lambda x: session(to_nchw(x))
    keras_model = load_float_model(model)
    return lambda x: training.predict(keras_model, x)


def reference_predictions(output: StageOutput) -> np.ndarray:
    return np.load(output.path(PREDICTIONS_FILE))
