"""Is an artifact's output on a target the host's? The check that matters on emulators and boards.

The target's runner saves the inputs it fed and, per image, its outputs and logits (`--outputs`,
`--logits`); the host's runner then runs the same artifact (or its logits probe, logits.py) on
those inputs, and the two are compared.

What is compared: the logits, the tensor feeding the final softmax (a trained model's softmax
saturates, so its difference is ~0 whether or not the kernels agree): largest absolute and
relative difference, in quantization steps for int8 logits, and the top-1 agreement between
target and host over the images. The inputs are validation images (check_inputs.py); `deploy bench`
on a lone file has no data and feeds one random input, and the record says so. The softmax outputs
are still compared as before (max_abs, max_lsb), for continuity.

A TFLite target that ran without XNNPACK (armv7's tflite-runtime has none) is compared with the
host's built-in kernels too: XNNPACK and the built-in int8 kernels round differently (0.04 on a
MobileNet V2's softmax on this host), which says nothing about the target.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import ToolError
from pipeline.targets.logits import Probe, make_probe


@dataclass(frozen=True)
class Check:
    """What a target runs for the comparison: the logits probe and the images (check_inputs.py);
    `inputs` None: one random input, when there is no data (`deploy bench` on a file)."""
    probe: Probe
    inputs: Path | None = None

    def labels(self) -> np.ndarray | None:
        if self.inputs is None:
            return None
        with np.load(self.inputs) as npz:
            return npz["labels"] if "labels" in npz.files else None

    def runner_args(self, model_path: Path, inputs: str | None = None, probe: str | None = None) -> list[str]:
        """device_runner flags; `inputs` and `probe` are the files' paths on the target (default: here)."""
        args = ["--inputs", inputs or str(self.inputs)] if self.inputs is not None else []
        return args + self.probe.runner_args(model_path, probe)


def prepare(model_path: Path, folder: Path, inputs: Path | None = None) -> Check:
    """The check for an artifact; a probe copy, if one is needed, goes into `folder`."""
    return Check(make_probe(model_path, folder), inputs)


def against_host(model_path: Path, target_npz: Path, record: dict, fp16: bool = False,
                 check: Check | None = None) -> tuple[dict, dict]:
    """(output_diff, per-image predictions) of the target's saved outputs against the host's on the
    same inputs (the target saved them), with the same kernels as the target's `record` says it used."""
    from pipeline.targets import host

    args = ["--inputs", str(target_npz)] + (check.probe.runner_args(model_path) if check else [])
    tflite = Path(model_path).suffix == ".tflite"
    if tflite and record.get("delegate") != "xnnpack":
        args.append("--no-xnnpack")
    with tempfile.TemporaryDirectory(prefix="deploy-diff-") as tmp:
        host_npz = Path(tmp) / "host.npz"
        host.run_benchmark(model_path, 1, 0, 1, fp16=fp16, extra_args=[*args, "--outputs", str(host_npz)])
        diff = output_diff(host_npz, target_npz)
        logits, predictions = logit_diff(host_npz, target_npz, check.labels() if check else None)
    diff.update(logits)
    if tflite:
        diff["host_delegate"] = "none" if "--no-xnnpack" in args else "xnnpack"
    return diff, predictions


def output_diff(host_npz: Path, target_npz: Path) -> dict:
    """Largest difference over every output: in real units, and in quantization steps for int outputs."""
    with np.load(host_npz) as ours, np.load(target_npz) as theirs:
        names = _outputs(ours)
        if names != _outputs(theirs):
            raise ToolError(f"{target_npz}: the target saved other outputs than the host ({', '.join(names)})")
        max_abs, max_lsb = 0.0, None
        for key in names:
            a, b = _same_shape(ours, theirs, key, target_npz)
            steps = np.abs(a.astype(np.float64) - b.astype(np.float64))
            if np.issubdtype(a.dtype, np.integer):
                max_lsb = max(max_lsb or 0, int(steps.max(initial=0)))
                steps = steps * (float(ours[f"{key}_quant"][0]) or 1.0)
            max_abs = max(max_abs, float(steps.max(initial=0)))
    return {"max_abs": max_abs, "max_lsb": max_lsb}


def logit_diff(host_npz: Path, target_npz: Path, labels: np.ndarray | None = None) -> tuple[dict, dict]:
    """The logits compared (the softmax's input, or output_0 for a model without a final softmax),
    and the per-image top-1 classes of target and host (with the labels when known).

    max_rel is per image: the largest |target - host| over the classes divided by the host's
    largest |logit| on that image, the worst image kept; element-wise ratios explode on logits
    near zero and say nothing.
    """
    with np.load(host_npz) as ours, np.load(target_npz) as theirs:
        key = "logits" if "logits" in ours.files else "output_0"
        if key not in theirs.files:
            raise ToolError(f"{target_npz}: the target saved no {key} (an older device_runner.py on the target?)")
        a, b = _same_shape(ours, theirs, key, target_npz)
        scale, zero_point = (float(v) for v in ours[f"{key}_quant"])
        quantized = np.issubdtype(a.dtype, np.integer)
    n = len(a)
    a, b = a.reshape(n, -1).astype(np.float64), b.reshape(n, -1).astype(np.float64)
    steps = np.abs(a - b)
    if quantized:  # dequantize: the same scale and zero point on both sides
        a, b = (a - zero_point) * scale, (b - zero_point) * scale
    diff = np.abs(a - b)
    largest = np.abs(a).max(axis=1)
    rel = diff.max(axis=1) / np.where(largest > 0, largest, 1.0)
    host_top1, target_top1 = a.argmax(axis=1), b.argmax(axis=1)
    result = {
        "compared": "logits" if key == "logits" else "outputs",
        "inputs": "validation" if labels is not None else "random",
        "n": int(n),
        "logits_max_abs": float(diff.max(initial=0)),
        "logits_max_rel": float(rel.max(initial=0)),
        "logits_max_steps": int(steps.max(initial=0)) if quantized else None,
        "top1_agreement": float(np.mean(host_top1 == target_top1)),
    }
    predictions = {"target": target_top1.tolist(), "host": host_top1.tolist()}
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if len(labels) != n:
            raise ToolError(f"{target_npz}: {n} images compared but {len(labels)} labels")
        result["target_top1"] = float(np.mean(target_top1 == labels))
        result["host_top1"] = float(np.mean(host_top1 == labels))
        predictions["labels"] = labels.tolist()
    return result, predictions


def _outputs(npz) -> list[str]:
    return sorted(k for k in npz.files if k.startswith("output_") and not k.endswith("_quant"))


def _same_shape(ours, theirs, key: str, target_npz: Path) -> tuple[np.ndarray, np.ndarray]:
    a, b = ours[key], theirs[key]
    if a.shape != b.shape:
        raise ToolError(f"{target_npz}: {key} has shape {list(b.shape)} on the target, {list(a.shape)} on the host")
    return a, b
