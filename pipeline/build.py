"""`deploy build`: make the plan (pipeline.rules), run it on an executor, write the report from the results."""
from __future__ import annotations

import logging
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

from pipeline import atomic, data
from pipeline.config import BuildConfig, is_builtin, resolved_augment
from pipeline.errors import QualityGateError, ToolError, UserInputError
from pipeline.executors import make_executor
from pipeline.executors.scheduler import Failed, Skipped
from pipeline.plan import Node, Plan
from pipeline.report import schema
from pipeline.report import on_target
from pipeline.report.ingest import benchmark_from_record
from pipeline.report.recommend import recommend
from pipeline.rules import ArtifactPlan, ModelPlan, Planner
from pipeline.runner import Runner, stage_lineage
from pipeline.stages.base import StageOutput
from pipeline.targets.bench import require_benchmarkable
from pipeline.targets.spec import HostTarget, Target, parse_targets
from pipeline.versions import tool_versions

log = logging.getLogger("deploy")

REPORTED_TOOLS = (
    "mobile-deploy", "tensorflow", "tf-keras", "tensorflow-model-optimization",
    "ai-edge-litert", "numpy", "scikit-learn", "tf2onnx", "onnx", "onnxruntime", "pnnx", "ncnn", "onnx2tf",
)


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
        self.failures: list[schema.ArtifactFailure] = []

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
        return self.report(models)

    # ---- the report, from the results ---------------------------------------------------------

    def _failed(self, a: ArtifactPlan, outcome, target: Target | None = None) -> None:
        self.failures.append(schema.ArtifactFailure(model=a.model, format=a.format, precision=a.precision, error=str(outcome.error),
                                                    **({"target": target.name} if target else {})))

    def _artifact(self, a: ArtifactPlan, m: ModelPlan) -> schema.Artifact | None:
        """The artifact's entry, or None: its condition did not hold, or it failed (recorded)."""
        outcome = self.executor.outcome
        converted, verified = outcome(a.converted), outcome(a.verify)
        if isinstance(converted, Skipped):
            return None
        for o in (converted, verified):
            if isinstance(o, Failed):
                self._failed(a, o)
                return None
        benchmarks = []
        for target, node in a.benches:
            o = outcome(node)
            if isinstance(o, Failed):
                if isinstance(target, HostTarget):
                    self._failed(a, o)
                    return None
                self._failed(a, o, target)  # a device or emulator that cannot run it loses one row, not the artifact
                continue
            if o.result.get("partial"):  # reported once, never reused: the next build measures again
                shutil.rmtree(o.dir, ignore_errors=True)
            benchmark = benchmark_from_record(o.result)
            benchmark.isolation = stage_lineage(o).get("isolation")
            benchmarks.append(benchmark)
        target_accuracy = []
        for target, node in a.target_verifies:  # accuracy on an emulator's kernels: a failure costs that row only
            o = outcome(node)
            if isinstance(o, Failed):
                self._failed(a, o, target)
            else:
                target_accuracy.append(on_target.from_result(o.result))
        path, metadata_path = self._publish(a.model, converted)
        r, v, reference = converted.result, verified.result, outcome(m.baseline or m.reference)  # a variant's drop: from the uncompressed model
        return schema.Artifact(
            id=r["id"], model=a.model, format=a.format, precision=a.precision,
            path=path, metadata_path=metadata_path,
            size_bytes=r["size_bytes"], io=r["io"], calibration_images=r["calibration_images"],
            accuracy=schema.Accuracy(top1=v["top1"], agreement=v["agreement"], n=v["n"], max_abs_diff=v.get("max_abs_diff")),
            accuracy_drop_points=round(100 * (reference.result["top1"] - v["top1"]), 4),
            int8_check=v["int8_check"], benchmarks=benchmarks, target_accuracy=target_accuracy,
            compression=self._compression(m, a.precision),
            layer_errors=r.get("layer_errors"), layer_errors_note=r.get("layer_errors_note"), fallback=r.get("fallback"),
        )

    def _publish(self, name: str, converted: StageOutput) -> tuple[str, str]:
        """Copy the artifact and its metadata out of the cache to artifacts/<model>/."""
        folder = self.out / "artifacts" / name
        folder.mkdir(parents=True, exist_ok=True)
        for file in (*converted.result.get("files", [converted.result["file"]]), converted.result["recipe"]):
            copy = atomic.copy_tree if converted.path(file).is_dir() else atomic.copy_file
            copy(converted.path(file), folder / file)
        rel = folder.relative_to(self.out)
        return str(rel / converted.result["file"]), str(rel / converted.result["recipe"])

    def _qat_status(self, m: ModelPlan) -> schema.QatStatus:
        if m.qat is None:
            return m.qat_status
        result = self.executor.outcome(m.qat).result
        return schema.QatStatus(status="ok") if result["status"] == "ok" else schema.QatStatus(status="unsupported", reason=result["reason"])

    def _compression(self, m: ModelPlan, precision: str | None = None) -> schema.Compression | None:
        """A variant's recipe (its plan's, completed by its stage's result), and on an int8-qat artifact
        whether QAT was distilled; None for an uncompressed model's artifact made the ordinary way."""
        made = self.executor.outcome(m.model).result
        recipe = {**(m.compression or {}), **made.get("compression", {}), **_measured_compression(made)}
        if precision == "int8-qat" and m.qat is not None and self.executor.outcome(m.qat).result.get("distilled"):
            recipe = {"method": "none", **recipe, "qat_distilled": True}
        return schema.Compression(**{k: v for k, v in recipe.items() if k in schema.Compression.model_fields}) if recipe else None

    def report(self, plans: list[ModelPlan]) -> schema.Report:
        c = self.config
        outcome = self.executor.outcome
        artifacts = []
        for m in plans:
            artifacts += [a for a in (self._artifact(planned, m) for planned in m.artifacts) if a is not None]
            for node in m.published:
                path, _ = self._publish(m.name, outcome(node))
                log.info("Core ML model (spec checked): %s", self.out / path)
        models = []
        for m in plans:
            model, reference = outcome(m.model).result, outcome(m.reference).result
            models.append(schema.ModelInfo(
                name=m.name, source=m.source, input_shape=model["input_shape"],
                num_classes=model["num_classes"], labels=outcome(m.data).result["class_names"],
                params=model["params"], macs=model["macs"],
                float_accuracy=schema.Accuracy(top1=reference["top1"], agreement=1.0, n=reference["n"]),
                qat=self._qat_status(m), preprocessing=m.preprocessing.to_dict(), reference_runtime=m.reference_runtime,
                preprocessing_probe=m.probe, keras_twin=m.twin, parent=m.parent,
                compression=self._compression(m) if m.parent else None,
                pruning_sensitivity=schema.PruningSensitivity(**model["sensitivity"]) if "sensitivity" in model else None,
            ))
        first = outcome(plans[0].data).result
        report = schema.Report(
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            command=self.command,
            tools=tool_versions(REPORTED_TOOLS),
            data=schema.DataInfo(source=c.data, train=first["train"], val=first["val"], skipped=first["skipped"],
                                 val_used=outcome(plans[0].reference).result["n"], augment=resolved_augment(c)),
            models=models,
            artifacts=artifacts,
            quality_gate=schema.QualityGate(max_accuracy_drop_points=c.max_accuracy_drop, failures=gate_failures(artifacts, c.max_accuracy_drop)),
            failures=self.failures,
        )
        constraints = schema.Constraints(
            max_accuracy_drop=c.max_accuracy_drop, max_size_mb=c.max_size_mb, max_latency_ms=c.max_latency_ms)
        return report.model_copy(update={"recommendations": recommend(report, constraints)})


def _measured_compression(made: dict) -> dict:
    """The Compression fields a sparsity or clustering stage measured on the model it made."""
    measured = {"gzip_bytes": made.get("gzip_bytes")}
    if "sparsity" in made:
        measured |= {"zeros_in_pruned_kernels": made["sparsity"]["pruned_layers"], "zeros_in_all_kernels": made["sparsity"]["overall"]}
    if made.get("distinct_values"):
        measured["max_distinct_values"] = max(made["distinct_values"].values())
    return {k: v for k, v in measured.items() if v is not None}


def gate_failures(artifacts: list[schema.Artifact], max_drop: float | None) -> list[schema.GateFailure]:
    failures = []
    for a in artifacts:
        if max_drop is not None and a.accuracy_drop_points > max_drop:
            failures.append(schema.GateFailure(
                artifact=a.id, reason=f"top-1 dropped {a.accuracy_drop_points:.2f} points (max {max_drop})"))
        if a.int8_check is not None and not a.int8_check.fully_int8:
            failures.append(schema.GateFailure(
                artifact=a.id, reason=f"float compute left in an int8 model: {', '.join(a.int8_check.float_ops[:5])}"))
    return failures


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
