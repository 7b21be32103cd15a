"""bench: latency, init time and memory of one artifact on one target, in a fresh process.

On emulators and ssh boards it also compares the target's logits with the host's on a seeded
subset of the validation images (input `data`; without it one random input) in the same runner
process (pipeline/targets/output_check.py).
"""
from __future__ import annotations

import platform
import tempfile
from pathlib import Path

import numpy as np

from pipeline.stages.base import Stage, StageConfig, StageOutput
from pipeline.targets.adb import AdbOptions
from pipeline.targets.ssh import SshOptions


class BenchConfig(StageConfig):
    target: str
    # What the target is, so a result measured on another machine is never reused.
    target_identity: str
    threads: int
    warmup: int
    runs: int
    ssh: SshOptions | None = None  # ssh targets only: how to reach the board and its Python
    adb: AdbOptions | None = None  # adb targets only: the benchmark binaries and the cool-down
    fp16: bool = False  # ncnn: fp16 storage, packing and arithmetic; MNN: precision mode low
    check_images: int = 64  # emulators and boards: validation images compared with the host (check_inputs.py)
    check_seed: int = 0


def host_identity() -> str:
    import os

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.node()}|{platform.machine()}|{model}|{os.cpu_count()}"


class BenchStage(Stage):
    name = "bench"
    tools = ("ai-edge-litert", "ncnn", "onnxruntime", "mnn", "numpy")
    scripts = ("pipeline.targets.device_runner",)
    Config = BenchConfig

    def run(self, config: BenchConfig, inputs: dict[str, StageOutput], workdir: Path) -> dict:
        from pipeline.targets.bench import run_benchmark
        from pipeline.targets.spec import parse_target

        artifact = inputs["artifact"]
        target = parse_target(config.target)
        with tempfile.TemporaryDirectory(prefix="deploy-check-") as tmp:
            check = self._check_inputs(config, inputs, Path(tmp)) if compares_with_host(target) else None
            return run_benchmark(target, config.ssh, artifact.path(artifact.result["file"]), config.threads, config.warmup,
                                 config.runs, fp16=config.fp16, adb_options=config.adb, check_inputs=check)

    @staticmethod
    def _check_inputs(config: BenchConfig, inputs: dict[str, StageOutput], folder: Path) -> Path | None:
        """The validation images the target is compared on, preprocessed as the artifact expects."""
        from pipeline.stages.data import open_split
        from pipeline.targets import check_inputs

        if "data" not in inputs:
            return None
        # Only the chosen images are read from the store (Split.sample and check_inputs.select share one rule).
        chosen = open_split(inputs["data"], "val").sample(config.check_images, config.check_seed)
        x_val, y_val = chosen.read(np.arange(len(chosen)))
        path = folder / "check_inputs.npz"
        check_inputs.write(path, x_val, y_val, inputs["artifact"].result["preprocessing"], len(chosen))
        return path


def compares_with_host(target) -> bool:
    """Emulators and ssh boards run device_runner.py and are compared with the host; adb runs Google's tools."""
    from pipeline.targets.spec import EmulatedTarget, SshTarget

    return isinstance(target, EmulatedTarget | SshTarget)
