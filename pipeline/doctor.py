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
    Tool("onnxruntime", "ONNX artifacts (planned)", False, "not used yet"),
    Tool("tf2onnx", "Keras -> ONNX (planned)", False, "not used yet"),
    Tool("ncnn", "NCNN runtime (planned)", False, "not used yet"),
    Tool("pnnx", "ONNX -> NCNN (planned)", False, "not used yet"),
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
