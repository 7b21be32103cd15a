"""profile: where a TFLite artifact's time goes on a real target, each op timed alone beside the
whole artifact (pipeline/targets/op_profile.py; `--profile-ops`)."""
from __future__ import annotations

import logging
from pathlib import Path

from pipeline.stages.base import Stage, StageConfig, StageOutput
from pipeline.targets.device_runner import QEMU_VIRT_BOARD
from pipeline.targets.ssh import SshOptions

log = logging.getLogger(__name__)


class ProfileConfig(StageConfig):
    target: str
    target_identity: str  # a profile measured on another machine is never reused
    threads: int
    warmup: int
    runs: int
    rounds: int = 3
    ssh: SshOptions | None = None


class ProfileStage(Stage):
    name = "profile"
    tools = ("ai-edge-litert", "numpy")
    scripts = ("pipeline.targets.device_runner", "pipeline.targets.table_runner")
    Config = ProfileConfig

    def run(self, config: ProfileConfig, inputs: dict[str, StageOutput], workdir: Path) -> dict:
        from pipeline.targets import op_profile
        from pipeline.targets.bench import run_table
        from pipeline.targets.spec import parse_target

        artifact = inputs["artifact"]
        whole = artifact.path(artifact.result["file"]).read_bytes()
        ops = op_profile.single_ops(whole)
        result = run_table(parse_target(config.target), config.ssh, op_profile.models(ops, whole), config.threads,
                           config.warmup, config.runs, config.rounds, workdir)
        if result["cpu"].get("board") == QEMU_VIRT_BOARD:
            log.warning("%s: no op profile on %s: the board is emulated (QEMU's virt machine), its timing means nothing",
                        artifact.result["file"], config.target)
            return {"skipped": "emulated board"}
        return {"target": config.target, "threads": config.threads, "cpu": result["cpu"], **op_profile.summarize(ops, result)}
