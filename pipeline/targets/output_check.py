"""Is an artifact's output on a target the host's? The check that matters on emulators and boards.

The target's runner saves the inputs it fed and its outputs (`--outputs`); the host's runner then
runs the same artifact on those inputs, and the two are compared: the largest absolute difference,
and for integer outputs also in quantization steps (LSB). A TFLite target that ran without XNNPACK
(armv7's tflite-runtime has none) is compared with the host's built-in kernels too: XNNPACK and
the built-in int8 kernels round differently (0.04 on a MobileNet V2's softmax on this host), which
says nothing about the target.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from pipeline.errors import ToolError


def against_host(model_path: Path, target_npz: Path, record: dict, fp16: bool = False) -> dict:
    """output_diff of the target's saved outputs against the host's on the same inputs, with the
    same kernels as the target's `record` says it used."""
    from pipeline.targets import host

    args = ["--inputs", str(target_npz)]
    tflite = Path(model_path).suffix == ".tflite"
    if tflite and record.get("delegate") != "xnnpack":
        args.append("--no-xnnpack")
    with tempfile.TemporaryDirectory(prefix="deploy-diff-") as tmp:
        host_npz = Path(tmp) / "host.npz"
        host.run_benchmark(model_path, 1, 0, 1, fp16=fp16, extra_args=[*args, "--outputs", str(host_npz)])
        diff = output_diff(host_npz, target_npz)
    if tflite:
        diff["host_delegate"] = "none" if "--no-xnnpack" in args else "xnnpack"
    return diff


def output_diff(host_npz: Path, target_npz: Path) -> dict:
    """Largest difference over every output: in real units, and in quantization steps for int outputs."""
    with np.load(host_npz) as ours, np.load(target_npz) as theirs:
        names = sorted(k for k in ours.files if k.startswith("output_") and not k.endswith("_quant"))
        if names != sorted(k for k in theirs.files if k.startswith("output_") and not k.endswith("_quant")):
            raise ToolError(f"{target_npz}: the target saved other outputs than the host ({', '.join(names)})")
        max_abs, max_lsb = 0.0, None
        for key in names:
            a, b = ours[key], theirs[key]
            if a.shape != b.shape:
                raise ToolError(f"{target_npz}: {key} has shape {list(b.shape)} on the target, {list(a.shape)} on the host")
            steps = np.abs(a.astype(np.float64) - b.astype(np.float64))
            scale = float(ours[f"{key}_quant"][0])
            if np.issubdtype(a.dtype, np.integer):
                max_lsb = max(max_lsb or 0, int(steps.max(initial=0)))
                steps = steps * (scale or 1.0)
            max_abs = max(max_abs, float(steps.max(initial=0)))
    return {"max_abs": max_abs, "max_lsb": max_lsb}
