"""`deploy doctor`: which converters and runtimes are installed, and how to get what is missing.

Versions come from package metadata, so nothing heavy is imported.
"""
from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass

from pipeline.versions import tool_versions


@dataclass(frozen=True)
class Tool:
    package: str
    role: str
    required: bool
    how: str


TOOLS = (
    Tool("tensorflow", "Keras training and the TFLite converter", True, "pip install -e . (pins tensorflow==2.21.0)"),
    Tool("tf-keras", "Keras 2 models, which QAT needs", True, "pip install -e ."),
    Tool("tensorflow-model-optimization", "quantization-aware training", True, "pip install -e ."),
    Tool("ai-edge-litert", "LiteRT runtime with XNNPACK: verify and bench", True, "pip install -e ."),
    Tool("numpy", "arrays", True, "pip install -e ."),
    Tool("scikit-learn", "demo digits and the stratified split", True, "pip install -e ."),
    Tool("pillow", "image decoding", True, "pip install -e ."),
    Tool("onnx", "ONNX files: checks, graph fixes", True, "pip install -e ."),
    Tool("onnxruntime", "ONNX artifacts and ONNX input: verify, bench, reference", True, "pip install -e ."),
    Tool("tf2onnx", "Keras -> ONNX", True, "pip install -e ."),
    Tool("onnxoptimizer", "fuses Keras' ZeroPadding2D into convolutions before pnnx", True, "pip install -e ."),
    Tool("ncnn", "ncnn runtime: verify, bench, int8 calibration", True, "pip install -e ."),
    Tool("pnnx", "ONNX -> ncnn (its standalone executable)", True, "scripts/setup.sh (pip install --no-deps pnnx)"),
    Tool("mnn", "MNN: ONNX -> MNN, int8 quantization, runtime (--formats mnn)", True, "pip install -e ."),
    Tool("onnx2tf", "ONNX -> TFLite for ONNX input", True, "scripts/setup.sh (pip install --no-deps onnx2tf)"),
    Tool("onnxsim", "run by onnx2tf", True, "pip install -e ."),
)


def check() -> tuple[list[str], list[str]]:
    """Printable lines, and the names of missing required tools."""
    versions = tool_versions([t.package for t in TOOLS])
    rows = [f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores"]
    missing = []
    for tool in TOOLS:
        found = versions[tool.package]
        if found == "missing":
            if tool.required:
                missing.append(tool.package)
            state = f"MISSING ({tool.how})" if tool.required else f"not installed ({tool.how})"
        else:
            state = found
        rows.append(f"{tool.package:<32} {state:<40} {tool.role}")
    rows.append(f"{'deploy':<32} {shutil.which('deploy') or 'not on PATH':<40} the console script")
    if missing:
        rows.append(f"missing required tools: {', '.join(missing)}")
    return rows, missing
