"""ONNX -> MNN (fp32, fp16 weights, int8) with MNN's own converter and offline quantizer.

Both are the `mnn` wheel's C extension `_tools` (`mnnconvert` and `mnnquant`, each taking one argv
list). Never the package's `mnnconvert` / `mnnquant` console scripts or `MNN.tools`: their logger
runs `pip install` of a cloud logging SDK and sends usage records to the vendor
(docs/mnn.md). Each tool runs in a child Python that imports `_tools` alone, so a
native crash (mnnquant segfaults on a model converted from TFLite, measured) costs one artifact, and
the tools' console output is kept for the error message instead of flooding the build's log.

int8 is MNN's full int8 (weights and activations), calibrated on the build's calibration images:
mnnquant reads images from a folder, so they are written there as PNG files at the model's input
size (its resize is then the identity) with the build's preprocessing as MNN's mean and normal.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from pipeline.errors import ToolError

# What mnnquant measures activation ranges with: "ema" (moving average of min/max over the
# calibration batches) or "kl" (KL divergence, TensorRT's method). Neither suits every model
# (docs/mnn.md); the stage's "auto" tries both.
CALIBRATION_METHODS = {"ema": "EMA", "kl": "KL"}
TOOL_TIMEOUT_S = 1800  # quantizing runs the model on every calibration image
# The child imports the extension alone: never MNN.tools (module docstring).
_CHILD = "import sys, _tools; getattr(_tools, sys.argv[1])(sys.argv[1:])"


def _run_tool(tool: str, argv: list[str], output: Path, what: str) -> None:
    """Run `_tools.<tool>(["<tool>", *argv])` in a child Python; ToolError unless `output` was written."""
    output.unlink(missing_ok=True)
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD, tool, *argv], capture_output=True, text=True,
                              timeout=TOOL_TIMEOUT_S, env={**os.environ, "PYTHONNOUSERSITE": "1"})
    except subprocess.TimeoutExpired as e:
        raise ToolError(f"MNN {tool} did not finish {what} within {TOOL_TIMEOUT_S} s") from e
    if done.returncode != 0 or not output.is_file() or output.stat().st_size == 0:
        lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip() and "%" not in line]
        cause = f"killed by signal {-done.returncode}" if done.returncode < 0 else f"exit code {done.returncode}"
        raise ToolError(f"MNN {tool} failed {what} ({cause}, no {output.name} written): {' | '.join(lines[-3:])[:400]}")


def convert(onnx_path: Path, destination: Path, fp16: bool = False) -> Path:
    """ONNX -> .mnn; fp16: weights stored in half precision (MNN computes with them in fp32 unless
    the runtime's precision mode is low and the CPU has fp16 arithmetic)."""
    argv = ["-f", "ONNX", "--modelFile", str(onnx_path), "--MNNModel", str(destination), "--bizCode", "deploy"]
    _run_tool("mnnconvert", argv + (["--fp16"] if fp16 else []), destination, f"converting {onnx_path.name}")
    return destination


def quantize(float_mnn: Path, destination: Path, images_uint8: np.ndarray, *, mean, std, channel_order: str,
             method: str, workdir: Path) -> Path:
    """float .mnn -> int8 .mnn calibrated on `images_uint8` (N, H, W, C at the model's size),
    with the preprocessing x = (pixel - mean) / std in `channel_order` ("RGB"/"BGR"; 1 channel: gray)."""
    from PIL import Image

    if method not in CALIBRATION_METHODS:
        raise ValueError(f"unknown MNN calibration {method!r} (choose from {', '.join(CALIBRATION_METHODS)})")
    folder = workdir / "mnn_calibration"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    gray = images_uint8.shape[-1] == 1
    for i, image in enumerate(images_uint8):
        Image.fromarray(image[..., 0] if gray else image).save(folder / f"{i:05d}.png")
    config = {
        "format": "GRAY" if gray else channel_order,
        "mean": [float(m) for m in mean],
        "normal": [1.0 / float(s) for s in std],
        "width": int(images_uint8.shape[2]),
        "height": int(images_uint8.shape[1]),
        "path": f"{folder}/",
        "used_image_num": int(len(images_uint8)),
        "feature_quantize_method": CALIBRATION_METHODS[method],
        "weight_quantize_method": "MAX_ABS",
    }
    config_path = workdir / "mnn_quantize.json"
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    try:
        _run_tool("mnnquant", [str(float_mnn), str(destination), str(config_path)], destination,
                  f"quantizing {float_mnn.name} on {len(images_uint8)} images")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        config_path.unlink(missing_ok=True)
    return destination


# The ops mnnquant makes int8 (the ones whose float compute an int8 artifact should not keep).
QUANTIZABLE = ("Convolution", "ConvolutionDepthwise", "InnerProduct", "MatMul")


def op_types(path: Path) -> list[tuple[str, str]]:
    """(type, name) of every op of a .mnn model in run order; an int8 op's type ends with
    "[ DT_INT8 ]". MNN lists its ops only while running, so the model runs once here on zeros."""
    from pipeline.runtimes import mnn as mnn_runtime

    interpreter, session = mnn_runtime.open_session(path)
    mnn_runtime.feed(interpreter, session, np.zeros(interpreter.getSessionInput(session).getShape(), np.float32))
    ops = []
    interpreter.runSessionWithCallBackInfo(session, lambda tensors, info: ops.append((info.getType().strip(), info.getName())) or True,
                                           lambda tensors, info: True)
    return ops


def float_ops(path: Path) -> list[str]:
    """Convolution and dense ops of an int8 .mnn that compute in float (empty: fully int8 where it counts)."""
    return [name for kind, name in op_types(path) if kind.split()[0] in QUANTIZABLE and "DT_INT8" not in kind]
