"""Keras -> TFLite in every precision the pipeline ships.

fp32: plain conversion. fp16: float16 weights, fp16 arithmetic where the CPU has it (ARMv8.2 FP16,
through XNNPACK), fp32 elsewhere. dynamic-int8: int8 weights,
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


def convert(model, precision: str, calibration: np.ndarray | None = None, int8_io: bool = False, function=None,
            sparse: bool = False) -> bytes:
    """Convert an in-memory tf_keras model; `calibration` is float, already preprocessed.
    `function`: the model's batch-1 concrete function if already traced (see `trace`).
    `sparse`: store mostly-zero weights sparse (see `sparse_storage`)."""
    from pipeline.tf_import import tensorflow

    converter = make_converter(model, precision, calibration, int8_io, function)
    if sparse:
        sparse_storage(tensorflow(), converter)
    with capture_native_stderr() as native:
        try:
            return converter.convert()
        except Exception as e:  # the converter raises many types; all mean "this tool failed"
            failure = e
    raise ToolError(
        f"TFLite converter failed for {model.name} ({precision}): {str(failure).splitlines()[0] if str(failure) else type(failure).__name__}"
        f" | {native.tail()}"
    ) from failure


def make_converter(model, precision: str, calibration: np.ndarray | None = None, int8_io: bool = False, function=None):
    """The TFLiteConverter `convert` runs, set up for `precision` (the int8 debugger takes it too)."""
    from pipeline.tf_import import tensorflow

    tf = tensorflow()
    if precision not in CONVERTERS:
        raise ValueError(f"unknown precision {precision!r} (choose from {', '.join(CONVERTERS)})")
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function or trace(tf, model)], _weights_only(tf, model))
    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
        # Reduced-precision metadata: XNNPACK then computes in fp16 on CPUs with ARMv8.2 FP16
        # arithmetic (its delegate README); elsewhere the fp16 weights are dequantized to fp32 as before.
        converter.target_spec._experimental_supported_accumulation_type = tf.dtypes.float16
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
    return converter


def _weights_only(tf, model):
    """What the converter saves beside the traced function: only the model's variables.

    Given the Keras model itself, the converter writes it as a SavedModel, and tf_keras then traces
    every layer's call functions: 30 of the 32 s of an fp32 MobileNet V2 conversion at 32x32, 90 of
    112 s for a QAT ShuffleNet V2 (scripts/profile_convert.py). With only the variables the bytes
    are the same (serving signature included), in a quarter of the time. Without any object the
    converter skips the SavedModel and the .tflite has no signature: apps using the signature
    runner would break."""
    holder = tf.Module()
    # A Keras 3 model's function is frozen (see `trace`): it captures no variable.
    holder.weights = [] if _is_keras3(model) else list(model.variables)
    return holder


def sparse_storage(tf, converter) -> None:
    """Store sparse weights in sparse form (DENSIFY ops in the .tflite): the signal LiteRT's XNNPACK
    delegate needs before it considers its sparse (NCHW, SpMM) path for fp32 models. XNNPACK's other
    conditions are on the graph (pipeline.compress.sparsity) and whether it applied is measured
    (pipeline.compress.xnnpack_sparse)."""
    converter.optimizations = [*converter.optimizations, tf.lite.Optimize.EXPERIMENTAL_SPARSITY]


def trace(tf, model):
    """The model's inference function traced for batch 1."""
    spec = tf.TensorSpec([1, *model.inputs[0].shape[1:]], tf.float32)
    function = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    if _is_keras3(model):
        # A Keras 3 model's weights stay READ_VARIABLE ops that int8 calibration cannot run: freeze them.
        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

        function = convert_variables_to_constants_v2(function)
    return function


def _is_keras3(model) -> bool:
    return type(model).__module__.startswith("keras.")


def write(data: bytes, path: Path) -> Path:
    path.write_bytes(data)
    return path


# ---- ONNX -> TFLite with onnx2tf -------------------------------------------------------------
#
# onnx2tf is installed with --no-deps beside TensorFlow 2.21 (it pins older versions). It runs
# onnxsim as a subprocess (the environment's bin folder goes on PATH) and, offline, would try to
# download a calibration sample unless a file of that name is in its working directory.

ONNX2TF_TIMEOUT_S = 1200
ONNX2TF_OUTPUTS = {
    "fp32": "float32", "fp16": "float16", "dynamic-int8": "dynamic_range_quant", "int8-ptq": "integer_quant",
}
_ONNX2TF_SAMPLE = "calibration_image_sample_data_20x128x128x3_float32.npy"


def from_onnx(onnx_path: Path, calibration_nhwc: np.ndarray | None, out_dir: Path) -> dict[str, Path]:
    """Run onnx2tf once; returns {precision: .tflite path} for fp32, fp16 and, with calibration
    images (float, preprocessed, NHWC), dynamic-int8 and int8-ptq (per-channel, float I/O)."""
    import os
    import re
    import subprocess
    import sys

    out_dir.mkdir(parents=True, exist_ok=True)
    np.save(out_dir / _ONNX2TF_SAMPLE, np.zeros((20, 128, 128, 3), np.float32))
    bin_dir = str(Path(sys.executable).parent)
    command = [str(Path(bin_dir) / "onnx2tf"), "-i", str(onnx_path), "-o", "tf", "-n"]
    if calibration_nhwc is not None:
        np.save(out_dir / "calibration.npy", calibration_nhwc.astype(np.float32))
        # The data is already preprocessed: onnx2tf's own normalisation is the identity.
        command += ["-oiqt", "-qt", "per-channel", "-cind", _input_name(onnx_path), "calibration.npy",
                    "[[[[0.0,0.0,0.0]]]]", "[[[[1.0,1.0,1.0]]]]"]
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "TF_USE_LEGACY_KERAS": "1"}
    try:
        proc = subprocess.run(command, cwd=out_dir, env=env, capture_output=True, text=True, timeout=ONNX2TF_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ToolError(f"onnx2tf timed out after {ONNX2TF_TIMEOUT_S} s on {onnx_path.name}") from None
    log = proc.stdout + proc.stderr
    for scratch in (_ONNX2TF_SAMPLE, "calibration.npy"):  # 4 MB of zeros and the images: not artifacts
        (out_dir / scratch).unlink(missing_ok=True)
    stem = onnx_path.stem
    found = {p: out_dir / "tf" / f"{stem}_{suffix}.tflite" for p, suffix in ONNX2TF_OUTPUTS.items()}
    found = {p: path for p, path in found.items() if path.is_file()}
    missing_op = re.search(r"(\S+) OP is not yet implemented", log)
    if missing_op:
        from converters.onnx import describe_op

        raise ToolError(f"onnx2tf cannot convert {onnx_path.name}: {describe_op(onnx_path, _plain(missing_op.group(1)))} is not implemented; "
                        "replace it in the model or skip TFLite with --formats")
    if proc.returncode != 0 or "fp32" not in found:
        tail = " | ".join(_plain(line) for line in log.splitlines() if line.strip() and "oneDNN" not in line)
        tail = " | ".join(tail.split(" | ")[-5:])
        raise ToolError(f"onnx2tf failed on {onnx_path.name} (exit code {proc.returncode}): {tail}")
    return found


def _plain(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text).strip()


def _input_name(onnx_path: Path) -> str:
    import onnx

    proto = onnx.load(str(onnx_path))
    initializers = {i.name for i in proto.graph.initializer}
    return next(i.name for i in proto.graph.input if i.name not in initializers)
