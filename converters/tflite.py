"""Keras -> TFLite in every precision the pipeline ships.

fp32: plain conversion. fp16: float16 weights, float compute. dynamic-int8: int8 weights,
activations quantized on the fly. int8-ptq: full integer, activations calibrated on
training images. int8-qat: full integer from a quantization-aware-trained model, whose
fake-quant ranges were learned; the converter still wants a few calibration images.

The batch dimension is fixed to 1, as apps run it: with a dynamic batch every Keras Reshape
adds SHAPE/STRIDED_SLICE/PACK ops (195 in ShuffleNet V2, 28 % of its int8 latency at 32x32).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from pipeline.errors import ToolError
from pipeline.native_stderr import capture_native_stderr

CONVERTERS = ("fp32", "fp16", "dynamic-int8", "int8-ptq", "int8-qat")


def _representative(calibration: np.ndarray) -> Callable[[], Iterable[list[np.ndarray]]]:
    def batches():
        for image in calibration:
            yield [image[None].astype(np.float32)]

    return batches


def convert(model, precision: str, calibration: np.ndarray | None = None, int8_io: bool = False) -> bytes:
    """Convert an in-memory tf_keras model; `calibration` is float, already preprocessed."""
    from pipeline.tf_import import tensorflow

    tf = tensorflow()
    if precision not in CONVERTERS:
        raise ValueError(f"unknown precision {precision!r} (choose from {', '.join(CONVERTERS)})")
    converter = _batch_one_converter(tf, model)
    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "dynamic-int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif precision in ("int8-ptq", "int8-qat"):
        if calibration is None or len(calibration) == 0:
            raise ValueError(f"{precision} needs calibration images")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative(calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    with capture_native_stderr() as native:
        try:
            return converter.convert()
        except Exception as e:  # the converter raises many types; all mean "this tool failed"
            failure = e
    raise ToolError(
        f"TFLite converter failed for {model.name} ({precision}): {str(failure).splitlines()[0] if str(failure) else type(failure).__name__}"
        f" | {native.tail()}"
    ) from failure


def _batch_one_converter(tf, model):
    spec = tf.TensorSpec([1, *model.inputs[0].shape[1:]], tf.float32)
    function = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    return tf.lite.TFLiteConverter.from_concrete_functions([function], model)


def write(data: bytes, path: Path) -> Path:
    path.write_bytes(data)
    return path
