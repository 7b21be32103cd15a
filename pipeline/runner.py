"""Runs stages with a content-addressed cache, atomic outputs and a lineage record per stage.

A stage's key hashes its name, its config, its inputs' keys, any external content (model
file, data), the versions of the tools it uses and the project source the stage can reach. Outputs are written to a
temporary folder and renamed into place only when complete, so a build killed at any moment
never leaves a folder a later run would trust.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import json
import logging
import os
import platform
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

from pipeline import hashing
from pipeline.atomic import write_json
from pipeline.versions import tool_versions
from pipeline.stages.base import Stage, StageConfig, StageOutput

log = logging.getLogger("deploy")

LINEAGE = "lineage.json"
RESULT = "result.json"


_ROOT = Path(__file__).resolve().parent.parent
_PACKAGES = ("pipeline", "converters")


def _module_file(name: str) -> Path | None:
    base = _ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _project_imports(file: Path) -> set[str]:
    """Project modules a file imports anywhere, lazy imports inside functions included."""
    names = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n.split(".")[0] in _PACKAGES}


def reachable_modules(*modules: str) -> dict[str, Path]:
    """The project modules (and their files) these modules import, transitively."""
    seen: dict[str, Path] = {}
    pending = list(modules)
    while pending:
        name = pending.pop()
        file = _module_file(name)
        if name in seen or file is None:
            continue
        seen[name] = file
        pending.extend(_project_imports(file))
    return seen


@functools.cache
def code_digest(*modules: str) -> str:
    """Hash of the project source these modules can reach: changed code never reuses old
    results, and a change elsewhere (the report, the CLI) does not throw away a trained model."""
    return hashing.digest_paths(_ROOT, sorted(set(reachable_modules(*modules).values())))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed worker whose parent died can linger as a zombie until someone reaps it: it runs nothing.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class Runner:
    def __init__(self, out: Path, force: bool = False):
        self.cache = out / "cache"
        self.force = force
        self.outputs: list[StageOutput] = []
        self._remove_abandoned_work()

    def _remove_abandoned_work(self) -> None:
        """Delete temporary stage folders left by killed runs (their process is gone)."""
        for work in self.cache.glob("*/.tmp-*"):
            pid = work.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(work, ignore_errors=True)

    def key(self, stage: Stage, config: StageConfig, inputs: dict[str, StageOutput], external: dict[str, str]) -> str:
        return stage_key(stage, config, {name: out.key for name, out in inputs.items()}, external)

    def cached(self, stage: Stage, key: str) -> StageOutput | None:
        """The finished output under this key, or None (also None with --force)."""
        final = cache_folder(self.cache, stage.name, key)
        if self.force or not (final / LINEAGE).exists():
            return None
        return load_output(stage.name, key, final)

    def run(
        self,
        stage: Stage,
        config: StageConfig,
        inputs: dict[str, StageOutput] | None = None,
        label: str = "",
        external: dict[str, str] | None = None,
    ) -> StageOutput:
        """Run one stage in this process (or reuse its cached output)."""
        inputs = inputs or {}
        external = external or {}
        key = self.key(stage, config, inputs, external)
        title = f"{stage.name} {label}".strip()
        output = self.cached(stage, key)
        if output is not None:
            log.info("[cached] %s", title)
        else:
            log.info("[run]    %s ...", title)
            output = execute(self.cache, stage, config, inputs, key, title, external)
            log.info("[done]   %s (%.1f s)", title, output.seconds)
        self.outputs.append(output)
        return output


def stage_key(stage: Stage, config: StageConfig, input_keys: dict[str, str], external: dict[str, str]) -> str:
    """The content address of a stage's output: what it is, how it is set, what it reads."""
    blob = {
        "stage": stage.name,
        "code": code_digest(type(stage).__module__, *stage.scripts),
        "config": config.model_dump(mode="json"),
        "inputs": dict(sorted(input_keys.items())),
        "external": external,
        "tools": tool_versions(stage.tools),
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()


def cache_folder(cache: Path, stage_name: str, key: str) -> Path:
    return cache / stage_name / key[:20]


def load_output(stage_name: str, key: str, folder: Path, cached: bool = True) -> StageOutput:
    result = json.loads((folder / RESULT).read_text())
    seconds = json.loads((folder / LINEAGE).read_text())["seconds"]
    return StageOutput(stage_name, key, folder, result, cached, seconds)


def _run(stage: Stage, config: StageConfig, inputs: dict[str, StageOutput], work: Path) -> dict:
    """stage.run here, or, when its config pins TensorFlow's thread count (training: results depend
    on it, so it is in the key) and this process has another, in a fresh process that has it."""
    threads = getattr(config, "tf_threads", 0)
    if threads:
        from pipeline.resources import stage_threads

        if threads != stage_threads():
            from pipeline.worker_process import run_with_threads

            return run_with_threads(threads, stage.run, config, inputs, work)
    return stage.run(config, inputs, work)


def stage_lineage(output: StageOutput) -> dict:
    """The lineage record of a finished stage (what ran it, how it shared the machine)."""
    return json.loads(output.path(LINEAGE).read_text())


def execute(
    cache: Path, stage: Stage, config: StageConfig, inputs: dict[str, StageOutput], key: str, title: str,
    external: dict[str, str], extra_lineage: dict | None = None,
) -> StageOutput:
    """Run a stage into a temp folder named after this process, then rename it into the cache.

    Any process can call this (the driver, a pool worker, a Ray worker writing into its own
    cache copy); a process killed mid-stage leaves only its temp folder, which the next run deletes.
    """
    final = cache_folder(cache, stage.name, key)
    final.parent.mkdir(parents=True, exist_ok=True)
    work = final.parent / f".tmp-{key[:20]}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    try:
        result = _run(stage, config, inputs, work)
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
        **(extra_lineage or {}),
    }
    # The lineage file is the completion marker: written last, then the folder is renamed in.
    write_json(work / LINEAGE, lineage)
    if final.exists():
        shutil.rmtree(final)
    os.rename(work, final)
    return StageOutput(stage.name, key, final, result, False, seconds)
