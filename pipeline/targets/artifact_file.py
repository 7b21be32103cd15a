"""Is this file an artifact `deploy bench` can run? Checked on the host before any runner starts,
so a wrong file is the user's error (exit 2, naming it), not a failed tool (exit 3)."""
from __future__ import annotations

from pathlib import Path

from pipeline.errors import UserInputError

TFLITE_IDENTIFIER = b"TFL3"  # the flatbuffer file identifier, bytes 4-8 of every .tflite
NCNN_PARAM_MAGIC = "7767517"  # the first line of every ncnn .param


def check_artifact_file(path: Path) -> None:
    if not path.is_file():
        raise UserInputError(f"{path}: artifact file not found")
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        with path.open("rb") as f:
            head = f.read(8)
        if head[4:8] != TFLITE_IDENTIFIER:
            raise UserInputError(f"{path}: not a TFLite model (no TFL3 identifier); pass a .tflite that `deploy build` wrote")
    elif suffix == ".param":
        with path.open("rb") as f:
            first = f.readline().strip()
        if first != NCNN_PARAM_MAGIC.encode():
            raise UserInputError(f"{path}: not an ncnn .param file (first line is not {NCNN_PARAM_MAGIC}); pass a .ncnn.param that `deploy build` wrote")
        weights = path.with_suffix(".bin")
        if not weights.is_file() or weights.stat().st_size == 0:
            raise UserInputError(f"{weights}: the ncnn weights beside {path.name} are missing or empty; keep the .bin next to the .param")
    elif suffix == ".onnx":
        from converters import onnx as onnx_converter

        onnx_converter.load(path)
    else:
        raise UserInputError(f"{path}: unknown artifact type '{suffix}'; deploy bench runs .tflite, .ncnn.param (with its .bin) and .onnx")
