"""Activation ranges of a tensorflow-model-optimization QAT model, measured on data before fine-tuning.

tfmot starts every activation range at [-6, 6] and moves it by an exponential moving average with
decay 0.999 per training step (model-optimization#368: about 1000 steps to forget the start). A
short fine-tuning never gets there: after QAT on the demo digits (3 epochs of 23 steps) every ReLU
output of the pruned SqueezeNet still had a range near [-5.75, 5.9], so half of int8's levels went to negatives
a ReLU never makes and everything above ~6 was clipped; the pruned SqueezeNet's int8-qat lost 2
points that int8-ptq, calibrated on the same images, did not.

So, like the observers other QAT tools run before fine-tuning, the QAT stage first runs the
quantized model over some training images in inference mode (BatchNorm on its moving statistics,
as in the artifact) with every quantizer in its training branch: weight ranges from the weights,
input ranges accumulated, activation ranges either the running mean of each batch's min and max
(what tfmot's moving average settles to) or, as the QAT stage asks, the min and max over all the
images: int8-ptq's calibration, so QAT starts where int8-ptq is (measured better on photographs,
docs/int8.md). Fine-tuning then starts from the data's ranges and tfmot's average follows them.
Hand-written because tfmot has no API to set the ranges: the quantizers' ops in its quant_ops
module are swapped for the length of this call only.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def observe_ranges(qat_model, batches: Iterable[np.ndarray], overall: bool = False) -> int:
    """Set the quantizer ranges of `qat_model` (tfmot's quantize_model output) from these
    preprocessed batches; returns how many images it saw. The model's weights are not changed.
    `overall`: each activation range is the min and max over all the images (as the TFLite
    converter's calibration measures int8-ptq's), not the mean of the batches' ranges."""
    from pipeline.tf_import import tfmot

    tfmot()
    # Not exported by tfmot's public API; the module path is that of 0.7-0.8.
    from tensorflow_model_optimization.python.core.quantization.keras import quant_ops

    decay = {"value": 0.0}
    originals = {name: getattr(quant_ops, name) for name in ("AllValuesQuantize", "LastValueQuantize", "MovingAvgQuantize")}

    def training_branch(original, moving_average: bool):
        def quantize(*args, **kwargs):
            kwargs["is_training"] = True  # update the range from this tensor, whatever Keras' training flag says
            if moving_average and overall and decay["value"] > 0:
                # after the first batch (which replaced tfmot's [-6, 6]): widen to this batch's range
                kwargs.pop("ema_decay", None)
                kwargs.pop("per_channel", None)  # activations: per-tensor in the 8-bit scheme
                return originals["AllValuesQuantize"](*args, **kwargs)
            if moving_average:
                kwargs["ema_decay"] = decay["value"]
            return original(*args, **kwargs)
        return quantize

    seen = 0
    try:
        for name, original in originals.items():
            setattr(quant_ops, name, training_branch(original, name == "MovingAvgQuantize"))
        for step, images in enumerate(batches):
            decay["value"] = step / (step + 1)  # the first batch replaces tfmot's [-6, 6]; then a running mean
            qat_model(images, training=False)
            seen += len(images)
    finally:
        for name, original in originals.items():
            setattr(quant_ops, name, original)
    return seen
