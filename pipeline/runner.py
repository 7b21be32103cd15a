"""Runs stages with a content-addressed cache, atomic outputs and a lineage record per stage.

A stage's key hashes its name, its config, its inputs' keys, any external content (model
file, data), the versions of the tools it uses and this project's own source code. Outputs are written to a
temporary folder and renamed into place only when complete, so a build killed at any moment
never leaves a folder a later run would trust.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import platform
import shutil
import time
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from pipeline import hashing
from pipeline.atomic import write_json
from pipeline.stages.base import Stage, StageConfig, StageOutput

log = logging.getLogger("deploy")

LINEAGE = "lineage.json"
RESULT = "result.json"


@functools.cache
def code_digest() -> str:
    """Hash of this project's own source: a code change must not reuse results of old code."""
    root = Path(__file__).resolve().parent.parent
    files = [f for package in ("pipeline", "converters") for f in sorted((root / package).rglob("*.py"))]
    return hashing.digest_paths(root, files)


def tool_versions(names: tuple[str, ...] | list[str]) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "missing"
    return versions


class Runner:
    def __init__(self, out: Path, force: bool = False):
        self.cache = out / "cache"
        self.force = force
        self.outputs: list[StageOutput] = []

    def key(self, stage: Stage, config: StageConfig, inputs: dict[str, StageOutput], external: dict[str, str]) -> str:
        blob = {
            "stage": stage.name,
            "code": code_digest(),
            "config": config.model_dump(mode="json"),
            "inputs": {name: out.key for name, out in sorted(inputs.items())},
            "external": external,
            "tools": tool_versions(stage.tools),
        }
        return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()

    def run(
        self,
        stage: Stage,
        config: StageConfig,
        inputs: dict[str, StageOutput] | None = None,
        label: str = "",
        external: dict[str, str] | None = None,
    ) -> StageOutput:
        inputs = inputs or {}
        external = external or {}
        key = self.key(stage, config, inputs, external)
        final = self.cache / stage.name / key[:20]
        title = f"{stage.name} {label}".strip()
        if (final / LINEAGE).exists() and not self.force:
            output = self._load(stage, key, final, cached=True)
            log.info("[cached] %s", title)
        else:
            output = self._execute(stage, config, inputs, key, final, title, external)
        self.outputs.append(output)
        return output

    def _load(self, stage: Stage, key: str, folder: Path, cached: bool) -> StageOutput:
        result = json.loads((folder / RESULT).read_text())
        seconds = json.loads((folder / LINEAGE).read_text())["seconds"]
        return StageOutput(stage.name, key, folder, result, cached, seconds)

    def _execute(self, stage, config, inputs, key, final, title, external) -> StageOutput:
        final.parent.mkdir(parents=True, exist_ok=True)
        work = final.parent / f".tmp-{key[:20]}-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        log.info("[run]    %s ...", title)
        started = datetime.now(timezone.utc)
        t0 = time.perf_counter()
        try:
            result = stage.run(config, inputs, work)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        seconds = time.perf_counter() - t0
        write_json(work / RESULT, result)
        lineage = {
            "stage": stage.name,
            "key": key,
            "label": title,
            "config": config.model_dump(mode="json"),
            "parents": {name: {"stage": o.stage, "key": o.key} for name, o in inputs.items()},
            "external": external,
            "tools": tool_versions(stage.tools),
            "started": started.isoformat(timespec="seconds"),
            "seconds": round(seconds, 3),
            "host": platform.node(),
        }
        # The lineage file is the completion marker: written last, then the folder is renamed in.
        write_json(work / LINEAGE, lineage)
        if final.exists():
            shutil.rmtree(final)
        os.rename(work, final)
        log.info("[done]   %s (%.1f s)", title, seconds)
        return StageOutput(stage.name, key, final, result, False, seconds)
