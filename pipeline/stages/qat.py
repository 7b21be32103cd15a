"""qat: tensorflow-model-optimization's quantize_model (after the rewrites of
pipeline/quant/qat_rewrites.py, checked equal in float), its activation ranges measured on
int8-ptq's calibration images (pipeline/quant/qat_ranges.py), then fine-tuned on the training split
toward the float model (distilled from it by default, rules.qat). The best epoch on the held-out
images is kept, the quantized model before fine-tuning among the candidates (docs/int8.md).

A model tfmot cannot quantize is not an error here: the result says which layer (name
and class) stopped it, and the build decides between falling back to PTQ and failing.
"""
from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Literal

import numpy as np

from pipeline.compress.distill import DistillConfig
from pipeline.compress.common import quantize_scope
from pipeline.data import Preprocessing
from pipeline.models import training
from pipeline.quant.qat_ranges import observe_ranges
from pipeline.quant.qat_rewrites import rewrite_for_qat
from pipeline.stages.base import FitConfig, Stage, StageOutput
from pipeline.stages.data import calibration_images, open_split
from pipeline.stages.model import TF_TOOLS, load_float_model

log = logging.getLogger("deploy")

QAT_MODEL_FILE = "qat_model.h5"  # tf_keras's .keras format cannot reload quantize wrappers
# tfmot's cluster-preserving quantizer creates its variables (centroids, indices) from the weights it
# wraps when it is built: a model rebuilt from the saved config starts from initial weights, finds
# another number of centroids and cannot take the saved weights ("Weight count mismatch"). So those
# schemes keep the float model QAT started from, and loading rebuilds on it.
QAT_SOURCE_FILE = "qat_source.keras"
REBUILT_SCHEMES = ("cluster-preserve", "prune-cluster-preserve")
# A rewrite for QAT (pipeline/quant/qat_rewrites.py) is exact up to float rounding: checked on this
# many training images, refused beyond this output difference (softmax probabilities).
REWRITE_CHECK_IMAGES = 128
REWRITE_TOLERANCE = 1e-4


class QatConfig(FitConfig):
    patience: int = 0  # early stopping (pipeline.models.training); 0: every epoch
    freeze_bn_after: int = 0  # epochs, then batch-norm statistics frozen (training.freeze_batchnorm_after); 0: never
    distill: DistillConfig | None = None  # learn from inputs["teacher"]'s soft targets too (pipeline/compress/distill.py)
    # tfmot scheme (pipeline.compress.common.QAT_SCHEMES): "prune-preserve" / "cluster-preserve"
    # keep a sparse or clustered model's zeros / shared values through QAT.
    scheme: Literal["default", "prune-preserve", "cluster-preserve", "prune-cluster-preserve"] = "default"
    # The activation ranges QAT starts from: int8-ptq's calibration images (--calibration-images), the
    # min and max over them, as the converter measures int8-ptq's (pipeline/quant/qat_ranges.py).
    calibration_images: int

    def recipe(self) -> str:
        teacher = (f"distilled (T {self.distill.temperature:g}, soft-target weight {self.distill.alpha:g})" if self.distill
                   else "on the labels")
        freeze = f", batch norm frozen after epoch {self.freeze_bn_after}" if self.freeze_bn_after else ""
        return f"{teacher}{freeze}; " + super().recipe()


def unsupported_layers(model) -> list[tuple[str, str]]:
    """(name, class) of each layer neither the default 8-bit scheme nor qat_annotations has a recipe for."""
    from pipeline.tf_import import tfmot

    tfmot()
    # The public API does not expose the registry; this module path is stable across 0.7-0.8.
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry,
    )

    from pipeline.quant.qat_annotations import OUTPUT_QUANTIZED

    registry = default_8bit_quantize_registry.Default8BitQuantizeRegistry()
    return [(layer.name, type(layer).__name__) for layer in model.layers
            if type(layer).__name__ not in ("InputLayer", *OUTPUT_QUANTIZED) and not registry.supports(layer)]


def quantize(model, scheme: str = "default"):
    """quantize_model (or a preserving scheme), or a ValueError naming the layer that stops it."""
    from pipeline.compress.common import ReorderedConcatenate, quantize_with_scheme

    try:
        return quantize_with_scheme(model, scheme)
    except ReorderedConcatenate:
        raise  # names its layer already
    except Exception as e:  # tfmot raises ValueError, RuntimeError or TypeError by case
        message = str(e)
        layers = unsupported_layers(model)
        # The registry also lists layers tfmot's graph rewrites handle (a BatchNormalization after a
        # Conv2D), so the layer tfmot's message names, by name or class, is the one to blame.
        named = [(name, cls) for name, cls in layers if re.search(rf"\b({re.escape(name)}|{cls})\b", message)]
        blamed = (named or layers)[:1]
        detail = f"layer '{blamed[0][0]}' ({blamed[0][1]}) cannot be quantized" if blamed else message.splitlines()[0]
        raise ValueError(detail) from e


class QatStage(Stage):
    name = "qat"
    tools = (*TF_TOOLS, "tensorflow-model-optimization")
    Config = QatConfig

    def run(self, config: QatConfig, inputs: dict[str, StageOutput], workdir: Path) -> dict:
        prep = Preprocessing.from_dict(config.preprocessing)
        original = load_float_model(inputs["model"])
        # Read once: the activation ranges are measured on these; a rewrite is checked on the first of them.
        images = prep.apply(calibration_images(inputs["data"], config.calibration_images, config.seed))
        model, rewritten = rewrite_for_qat(original)
        rewrites = {}
        if rewritten:
            rewrites = {"batchnorms_rewritten": rewritten, "max_abs_diff": _difference(original, model, images[:REWRITE_CHECK_IMAGES])}
            if rewrites["max_abs_diff"] > REWRITE_TOLERANCE:
                return _unsupported(original, f"layer '{rewritten[0]}' (BatchNormalization) rewritten for QAT (qat_rewrites) "
                                              f"differs from the float model by {rewrites['max_abs_diff']:.2g} on training images")
            log.info("qat: %d BatchNormalization layer(s) tfmot cannot fold rewritten (1x1 depthwise convolutions, or "
                     "folded into a Dense; equal to the float model within %.1g)", len(rewritten), rewrites["max_abs_diff"])
        try:
            qat_model = quantize(model, config.scheme)
        except ValueError as e:
            return _unsupported(original, str(e))
        if config.scheme in REBUILT_SCHEMES:
            model.save(workdir / QAT_SOURCE_FILE)
        observed = observe_ranges(qat_model, (images[i : i + config.batch_size] for i in range(0, len(images), config.batch_size)),
                                  overall=True)
        train = open_split(inputs["data"], "train")
        history, stopping = training.fit(
            qat_model, train, prep, epochs=config.epochs,
            batch_size=config.batch_size, learning_rate=config.learning_rate, seed=config.seed,
            augment=config.augment, what="qat", patience=config.patience, watch_from=0,
            # QAT keeps the float model's behaviour: watched on agreement with it when it is the teacher,
            # and no fine-tuning at all is a candidate (the quantized model as the ranges left it).
            monitor="agreement" if config.distill else "accuracy", start_is_candidate=True,
            teacher=load_float_model(inputs["teacher"]) if config.distill else None, distill=config.distill,
            callbacks=[training.freeze_batchnorm_after(qat_model, config.freeze_bn_after)] if config.freeze_bn_after else None,
        )
        if stopping.get("best_epoch") == 0:
            log.info("qat: no fine-tuning epoch beat the quantized model before it on %d held-out images; it is kept",
                     stopping["held_out_images"])
        diverged = next((row["epoch"] for row in history if not math.isfinite(row["loss"])), None)
        if diverged is not None and stopping.get("best_epoch", diverged) >= diverged:  # NaN weights make NaN ranges: no int8 model can come of it
            return _unsupported(original, f"QAT fine-tuning diverged (loss NaN in epoch {diverged}); lower --qat-learning-rate",
                                history=history)
        with quantize_scope():  # tfmot's, plus the preserving schemes' quantizers
            qat_model.save(workdir / QAT_MODEL_FILE)
        return {"status": "ok", "model_file": QAT_MODEL_FILE, "history": history, "augment": config.augment,
                "distilled": config.distill is not None,
                "images": len(train), "range_images": observed, "early_stopping": stopping,
                **({"rewrites": rewrites} if rewrites else {}),
                **({"scheme": config.scheme} if config.scheme != "default" else {})}


def _unsupported(model, reason: str, **extra) -> dict:
    """The result of a QAT that cannot be: the build falls back to int8-ptq, or stops with --require-qat."""
    log.warning("QAT not possible for %s: %s", model.name, reason)
    return {"status": "unsupported", "reason": reason, **extra}


def _difference(original, rewritten, images) -> float:
    """Largest output difference of the rewritten float model from the original on these images."""
    return float(np.abs(original.predict(images, batch_size=64, verbose=0) - rewritten.predict(images, batch_size=64, verbose=0)).max())


def load_qat_model(output: StageOutput):
    from pipeline.compress.common import quantize_with_scheme
    from pipeline.tf_import import keras

    if output.path(QAT_SOURCE_FILE).exists():
        with quantize_scope():
            source = keras().models.load_model(output.path(QAT_SOURCE_FILE), compile=False)
        model = quantize_with_scheme(source, output.result["scheme"])
        model.load_weights(output.path(QAT_MODEL_FILE))
        return model
    with quantize_scope():
        return keras().models.load_model(output.path(QAT_MODEL_FILE), compile=False)
