"""Small stages for the plan and executor tests, importable by worker processes; only KerasNameStage
imports TensorFlow (tf_keras)."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from pathlib import Path

from pipeline.errors import ToolError
from pipeline.stages.base import FitConfig, Stage, StageConfig


class SleepConfig(StageConfig):
    value: int
    seconds: float = 0.0
    log: str = ""  # a file each run appends its pid and start/end times to
    tf_threads: int = 0  # pinned thread count (pipeline.runner._run), as training stages have


class SleepStage(Stage):
    """Sleeps, writes its value, and logs when it ran and in which process."""

    name = "toy-sleep"
    Config = SleepConfig

    def run(self, config: SleepConfig, inputs, workdir: Path) -> dict:
        start = time.time()
        time.sleep(config.seconds)
        (workdir / "value.txt").write_text(str(config.value + sum(o.result["value"] for o in inputs.values())))
        if config.log:
            with open(config.log, "a") as f:
                f.write(json.dumps({"value": config.value, "pid": os.getpid(), "start": start, "end": time.time()}) + "\n")
        from pipeline.resources import stage_threads

        return {"value": config.value, "pid": os.getpid(), "threads": stage_threads()}


class FailStage(Stage):
    name = "toy-fail"
    Config = SleepConfig

    def run(self, config, inputs, workdir: Path) -> dict:
        (workdir / "half.bin").write_bytes(b"partial")
        raise ToolError(f"toy tool failed on {config.value}")


class DieOnceConfig(StageConfig):
    marker: str  # exists after the first attempt: the second attempt finishes


class DieOnceStage(Stage):
    """The first attempt kills its own worker process mid-write (as the OOM killer would)."""

    name = "toy-die-once"
    Config = DieOnceConfig

    def run(self, config: DieOnceConfig, inputs, workdir: Path) -> dict:
        (workdir / "out.bin").write_bytes(b"half")
        marker = Path(config.marker)
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        (workdir / "out.bin").write_bytes(b"whole")
        return {"value": 1, "pid": os.getpid()}


class ChecksumConfig(StageConfig):
    algorithm: str = "sha256"


class ChecksumStage(Stage):
    """The toy 'new stage' of the plan-rule test: a checksum of every file of the float model."""

    name = "toy-checksum"
    Config = ChecksumConfig

    def run(self, config: ChecksumConfig, inputs, workdir: Path) -> dict:
        model = inputs["model"].dir
        digest = hashlib.new(config.algorithm)
        for path in sorted(p for p in model.rglob("*") if p.is_file()):
            digest.update(path.read_bytes())
        (workdir / "checksum.txt").write_text(digest.hexdigest())
        return {"checksum": digest.hexdigest(), "pid": os.getpid()}


class KerasNameConfig(StageConfig):
    value: int


class KerasFitNameConfig(FitConfig):
    """KerasNameStage's config shaped as a training stage's (the in-process backend releases after those)."""

    value: int
    preprocessing: dict = {}
    epochs: int = 1
    batch_size: int = 1
    learning_rate: float = 0.1
    seed: int = 0


class KerasNameStage(Stage):
    """Builds a tf_keras layer and returns the name Keras gave it: "dense" in a fresh Keras session,
    "dense_1" and up when an earlier stage in the same process left its session state behind."""

    name = "toy-keras-name"
    Config = KerasNameConfig

    def run(self, config: KerasNameConfig, inputs, workdir: Path) -> dict:
        from pipeline.tf_import import keras

        return {"value": config.value, "pid": os.getpid(), "layer": keras().layers.Dense(1).name}
