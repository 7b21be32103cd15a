"""`deploy build`: make the plan (pipeline.rules), run it on an executor, hand the outcomes to
pipeline.report.assemble, write the report files and apply the gates."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from pipeline import data
from pipeline.config import BuildConfig, is_builtin
from pipeline.errors import QualityGateError, ToolError, UserInputError
from pipeline.executors import make_executor
from pipeline.plan import Failed, Node, Plan, Skipped
from pipeline.report import assemble, schema
from pipeline.rules import ModelPlan, Planner
from pipeline.runner import Runner
from pipeline.stages.base import StageOutput
from pipeline.targets.bench import require_benchmarkable
from pipeline.targets.spec import parse_targets

log = logging.getLogger("deploy")


def prepare_out_dir(out: Path) -> Path:
    """Create the output folder and prove it is writable before hours of work go into it."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise UserInputError(f"--out {out}: cannot write there ({e.strerror or e}); choose another folder") from e
    return out


def _check_out_outside_data(config: BuildConfig) -> None:
    if config.data == "demo":
        return
    data_root, out = Path(config.data).resolve(), config.out.resolve()
    if out == data_root or data_root in out.parents:
        raise UserInputError(f"--out {config.out} is inside --data {config.data}: its files would be read as a class; choose another folder")


def _model_names(config: BuildConfig) -> list[tuple[str, str]]:
    """(unique artifact name, source) per requested model."""
    named, seen = [], set()
    for source in config.models:
        base = source if is_builtin(source) else Path(source).stem
        name, n = base, 2
        while name in seen:
            name, n = f"{base}_{n}", n + 1
        seen.add(name)
        named.append((name, source))
    return named


class Build:
    """Checks the inputs, makes the plan (pipeline.rules), runs it on an executor, reports the results."""

    def __init__(self, config: BuildConfig, command: str, dry_run: bool = False):
        self.config = config
        self.command = command
        self.data_fingerprint = data.fingerprint(config.data)  # checks the data before anything is written
        self.targets = parse_targets(config.targets)
        for target in self.targets:  # an unsupported target fails before minutes of training
            require_benchmarkable(target)
        _check_out_outside_data(config)
        # A dry run writes nothing, except what a probe the plan needs writes into the cache.
        self.out = config.out if dry_run else prepare_out_dir(config.out)
        self.runner = Runner(self.out, config.force)
        self.executor = make_executor(self.runner, "local", 1) if dry_run else make_executor(
            self.runner, config.executor, config.jobs, config.ray_address)

    def close(self, abort: bool = False) -> None:
        self.executor.close(abort)

    def _resolve(self, node: Node) -> StageOutput:
        """Run a probe and what it needs now, while planning."""
        ran_before = len(self.executor.ran)
        outcome = self.executor.run([*node.ancestors(), node])[node.key]
        self._planned.ran_while_planning.update(n.key for n in self.executor.ran[ran_before:])
        if isinstance(outcome, Failed):
            raise outcome.error
        if isinstance(outcome, Skipped):
            raise ToolError(f"{node.title}: needed to plan the build, but skipped: {outcome.reason}")
        return outcome

    def _threads(self) -> list[int]:
        from pipeline.targets.host import default_thread_counts

        return self.config.threads or default_thread_counts()

    def plan(self) -> tuple[Plan, list[ModelPlan]]:
        planner = Planner(self.config, self.targets, self.data_fingerprint, self._resolve, self._threads())
        self._planned = planner.plan
        models = [plan for name, source in _model_names(self.config) for plan in planner.model(name, source).with_variants()]
        return planner.plan, models

    def run(self) -> schema.Report:
        plan, models = self.plan()
        self.executor.run(plan.nodes)
        return assemble.report(self.config, self.command, self.out, self.executor.outcome, models)


def dry_run(config: BuildConfig) -> list[str]:
    """The plan as text, without running a stage (except the probes planning needs)."""
    from pipeline.plan import describe

    run = Build(config, "deploy build --dry-run", dry_run=True)
    try:
        plan, _ = run.plan()
        return describe(plan, lambda n: run.runner.cached(n.stage, n.key))
    finally:
        run.close()


def build(config: BuildConfig, command: str = "deploy build") -> schema.Report:
    """Run every stage for every model, write report.json, report.md and report.html, then apply the gates."""
    from pipeline import report as report_files

    run = Build(config, command)
    try:
        result = run.run()
    except BaseException:
        run.close(abort=True)
        raise
    run.close()
    report_files.write(result, run.out)
    log.info("report: %s", run.out / report_files.REPORT_MD)
    if result.failures:
        first = result.failures[0]
        raise ToolError(
            f"{len(result.failures)} artifact(s) or benchmark(s) failed (the report lists them), first "
            f"{first.model} {first.format} {first.precision}{f' on {first.target}' if first.target else ''}: {first.error}"
        )
    if result.quality_gate.failures:
        first = result.quality_gate.failures[0]
        raise QualityGateError(
            f"quality gate failed for {len(result.quality_gate.failures)} artifact(s), first {first.artifact}: {first.reason}"
        )
    return result
