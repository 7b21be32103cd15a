"""The host target: benchmark an artifact (.tflite, .ncnn.param, .onnx) on this machine, one fresh process per run.

A fresh process keeps measurements independent: no warm caches, thread pools or allocator
state carried over from an earlier model, and the peak RSS belongs to this model alone.
The child runs device_runner.py, the same script the ARM targets copy, so every target
measures the same way. Importing this module does not import TensorFlow.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

from pipeline.errors import ToolError

RUNNER = Path(__file__).with_name("device_runner.py")
TABLE_RUNNER = Path(__file__).with_name("table_runner.py")  # imports RUNNER: copied beside it
STDERR_TAIL_LINES = 5


class BenchError(ToolError):
    """A benchmark run failed; carries the model path and the runner's last stderr lines."""

    def __init__(self, model_path, reason: str, stderr_tail: list[str] = (), returncode: int | None = None):
        self.model_path = Path(model_path)
        self.reason = reason
        self.stderr_tail = list(stderr_tail)
        self.returncode = returncode  # the runner's exit code, when it ran to an exit
        message = f"benchmark of {self.model_path} failed: {reason}"
        if self.stderr_tail:  # one line, like every error the CLI prints
            message += " | " + " | ".join(line.strip() for line in self.stderr_tail)
        super().__init__(message)


def run_benchmark(
    model_path: Path, threads: int, warmup: int, runs: int, timeout_s: float = 600, extra_args: list[str] = (),
    fp16: bool = False,
) -> dict:
    """Run device_runner.py on model_path in a new interpreter and return its JSON result."""
    command = [sys.executable, str(RUNNER), str(model_path), "--threads", str(threads)]
    command += ["--warmup", str(warmup), "--runs", str(runs), *extra_args] + (["--fp16"] if fp16 else [])
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as expired:
        reason = f"timed out after {timeout_s} s"
        raise BenchError(model_path, reason, tail(expired.stderr)) from None
    if proc.returncode != 0:
        raise BenchError(model_path, f"runner exited with {proc.returncode}", tail(proc.stderr), proc.returncode)
    result = parse_result(proc.stdout)
    if result is None:
        raise BenchError(model_path, "runner printed no JSON result", tail(proc.stderr))
    result["target"] = "host"
    return result


def run_table(models: Path, threads: int, warmup: int, runs: int, rounds: int, timeout_s: float = 3600) -> dict:
    """Run table_runner.py on the models in `models` (an npz) in a new interpreter; its JSON result."""
    command = [sys.executable, str(TABLE_RUNNER), str(models), "--threads", str(threads), "--warmup", str(warmup),
               "--runs", str(runs), "--rounds", str(rounds)]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as expired:
        raise BenchError(models, f"timed out after {timeout_s} s", tail(expired.stderr)) from None
    result = parse_result(proc.stdout) if proc.returncode == 0 else None
    if result is None:
        raise BenchError(models, f"table runner exited with {proc.returncode}", tail(proc.stderr), proc.returncode)
    return result


def artifact_files(model_path: Path) -> list[Path]:
    """Every file a device needs for an artifact: an ncnn .param comes with its .bin."""
    if model_path.suffix == ".param":
        return [model_path, model_path.with_suffix(".bin")]
    return [model_path]


def recorded_fp16(artifact: Path) -> bool:
    """Whether an ncnn or MNN artifact's recipe (beside it) says to run it with fp16 on (the fp16 artifacts)."""
    artifact = Path(artifact)
    # The recipe is named after the artifact id: x.ncnn.param -> x.ncnn.json, x.mnn -> x.mnn.json.
    recipe_path = artifact.with_name(artifact.name + ".json") if artifact.suffix == ".mnn" else artifact.with_suffix(".json")
    try:
        recipe = json.loads(recipe_path.read_text())
    except (OSError, ValueError):
        return False
    return bool(recipe.get("runtime_options", {}).get("fp16", False)) if isinstance(recipe, dict) else False


def default_thread_counts() -> list[int]:
    """Single-threaded plus all cores: the two settings a phone app is likely to use."""
    return sorted({1, os.cpu_count() or 1})


def parse_result(stdout: str) -> dict | None:
    # The runner guarantees stdout holds only its JSON object, so anything else is a failure.
    try:
        result = json.loads(stdout)
    except json.JSONDecodeError:
        return None
    return result if isinstance(result, dict) else None


def tail(stderr) -> list[str]:
    # TimeoutExpired keeps partial output as bytes even when text=True was asked for.
    if isinstance(stderr, bytes):
        stderr = stderr.decode("utf-8", "replace")
    lines = [line for line in (stderr or "").splitlines() if line.strip()]
    return lines[-STDERR_TAIL_LINES:]


def alternating_p50(files: dict[str, Path], rounds: int, threads: int, warmup: int, runs: int) -> tuple[dict[str, list[float]], dict]:
    """For the benchmark scripts: p50 of each file per round, each measurement a fresh process and the
    files alternating within a round, so load drift hits all alike (take ratios per round). Prints a
    line per measurement; returns the p50s by name and the last runner result (CPU, runtime)."""
    p50: dict[str, list[float]] = {name: [] for name in files}
    width = max(map(len, files))
    result: dict = {}
    for round_ in range(rounds):
        for name, path in files.items():
            result = run_benchmark(path, threads, warmup, runs)
            p50[name].append(result["latency_ms"]["p50"])
            print(f"  round {round_ + 1} {name:<{width}} {path.stat().st_size / 1e6:6.2f} MB  delegate={result['delegate']}  "
                  f"p50 {p50[name][-1]:8.3f} ms  load {os.getloadavg()[0]:.2f}", flush=True)
    return p50, result


def machine_line(result: dict, threads: int) -> str:
    """What the benchmark scripts print last: the CPU and runtime of `result`, the threads, the load now."""
    cpu = result["cpu"]
    return (f"CPU: {cpu['model']} ({cpu['machine']}, {cpu['count']} cores); runtime {result['runtime']} "
            f"{result['runtime_version']}; {threads} thread(s); load after: {os.getloadavg()[0]:.2f}")
