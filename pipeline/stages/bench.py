"""bench: latency, init time and memory of one artifact on one target, in a fresh process."""
from __future__ import annotations

import platform
from pathlib import Path

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
    fp16: bool = False  # ncnn: fp16 storage, packing and arithmetic


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
    tools = ("ai-edge-litert", "ncnn", "onnxruntime", "numpy")
    scripts = ("pipeline.targets.device_runner",)
    Config = BenchConfig

    def run(self, config: BenchConfig, inputs: dict[str, StageOutput], workdir: Path) -> dict:
        from pipeline.targets.bench import run_benchmark
        from pipeline.targets.spec import parse_target

        artifact = inputs["artifact"]
        return run_benchmark(parse_target(config.target), config.ssh, artifact.path(artifact.result["file"]),
                             config.threads, config.warmup, config.runs, fp16=config.fp16, adb_options=config.adb)
