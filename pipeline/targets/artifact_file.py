"""Is this file an artifact `deploy bench` can run? Checked on the host before any target runs it,
so a wrong file is the user's error (exit 2, naming it), not a failed tool (exit 3): first by its
header, then by loading it once in its own runtime on this machine."""
from __future__ import annotations

from pathlib import Path

from pipeline.errors import UserInputError

TFLITE_IDENTIFIER = b"TFL3"  # the flatbuffer file identifier, bytes 4-8 of every .tflite


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
        from converters.ncnn import param_problem

        try:
            problem = param_problem(path.read_text())
        except UnicodeDecodeError:
            problem = "it is not text"
        if problem:
            raise UserInputError(f"{path}: not an ncnn .param file ({problem}); pass a .ncnn.param that `deploy build` wrote")
        weights = path.with_suffix(".bin")
        if not weights.is_file() or weights.stat().st_size == 0:
            raise UserInputError(f"{weights}: the ncnn weights beside {path.name} are missing or empty; keep the .bin next to the .param")
    elif suffix == ".onnx":
        from converters import onnx as onnx_converter

        onnx_converter.load(path)
    elif suffix != ".mnn":  # MNN's file has no identifier: the runner's load below checks it
        raise UserInputError(f"{path}: unknown artifact type '{suffix}'; deploy bench runs .tflite, .ncnn.param (with its .bin), .onnx and .mnn")
    _check_loads(path)


def _check_loads(path: Path) -> None:
    """One run of the device runner on this machine (a fresh process: a crash costs nothing): a file
    its runtime refuses (a truncated flatbuffer, a .param of noise, a .bin too short for its .param)
    is bad input; any other failure is left to the benchmark to report."""
    from pipeline.targets import host
    from pipeline.targets.device_runner import EXIT_BAD_MODEL

    try:
        host.run_benchmark(path, threads=1, warmup=0, runs=1, timeout_s=300)
    except host.BenchError as e:
        if e.returncode != EXIT_BAD_MODEL:
            return
        reason = (e.stderr_tail[-1] if e.stderr_tail else e.reason).strip().removeprefix("device_runner: ")
        raise UserInputError(f"{path}: its runtime cannot load it ({reason}); pass an artifact that `deploy build` wrote") from None
