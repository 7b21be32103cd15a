"""The build's report from the plan's outcomes: each model and artifact entry, the failures, the
quality gate and the recommendation, with the artifacts copied out of the cache to artifacts/<model>/.

It reads a finished plan (pipeline.rules' ModelPlan and ArtifactPlan, each node's outcome from the
executor) and knows nothing of how the plan ran.
"""
from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import atomic
from pipeline.config import BuildConfig, resolved_augment
from pipeline.plan import Failed, Node, Outcome, Skipped
from pipeline.report import metrics, on_target, schema
from pipeline.report.ingest import benchmark_from_record
from pipeline.report.recommend import recommend
from pipeline.runner import stage_lineage
from pipeline.stages.base import StageOutput
from pipeline.targets.spec import HostTarget, Target
from pipeline.versions import tool_versions

if TYPE_CHECKING:  # the plan's records are read, never made here
    from pipeline.rules import ArtifactPlan, ModelPlan

log = logging.getLogger("deploy")

REPORTED_TOOLS = (
    "mobile-deploy", "tensorflow", "tf-keras", "tensorflow-model-optimization",
    "ai-edge-litert", "numpy", "scikit-learn", "tf2onnx", "onnx", "onnxruntime", "pnnx", "ncnn", "onnx2tf", "mnn",
)


def report(config: BuildConfig, command: str, out: Path, outcome: Callable[[Node], Outcome],
           plans: list[ModelPlan]) -> schema.Report:
    """The report of a build whose plan ran (`outcome` gives each node's); publishes its artifacts into `out`."""
    return _Assembly(out, outcome).report(config, command, plans)


class _Assembly:
    def __init__(self, out: Path, outcome: Callable[[Node], Outcome]):
        self.out, self.outcome = out, outcome
        self.failures: list[schema.ArtifactFailure] = []

    def _failed(self, a: ArtifactPlan, outcome: Failed, target: Target | None = None) -> None:
        self.failures.append(schema.ArtifactFailure(model=a.model, format=a.format, precision=a.precision, error=str(outcome.error),
                                                    **({"target": target.name} if target else {})))

    def _artifact(self, a: ArtifactPlan, m: ModelPlan) -> schema.Artifact | None:
        """The artifact's entry, or None: its condition did not hold, or it failed (recorded)."""
        outcome = self.outcome
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
        self._attach_profiles(a, benchmarks)
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

    def _attach_profiles(self, a: ArtifactPlan, benchmarks: list[schema.Benchmark]) -> None:
        """--profile-ops: each profile onto its target's benchmark at the same threads; a failed one
        costs that profile only (recorded)."""
        for target, threads, node in a.profiles:
            o = self.outcome(node)
            if isinstance(o, Failed):
                self._failed(a, o, target)
                continue
            bench = next((b for b in benchmarks if b.target == target.name and b.threads == threads), None)
            if bench is not None and "skipped" not in o.result:
                bench.op_profile = schema.OpProfile(rounds=o.result["rounds"], whole_ms=o.result["whole_ms"], ops=o.result["ops"])

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
        result = self.outcome(m.qat).result
        if result["status"] != "ok":
            return schema.QatStatus(status="unsupported", reason=result["reason"])
        check = self.outcome(m.qat_check) if m.qat_check is not None else None
        if not isinstance(check, StageOutput):
            return schema.QatStatus(status="ok")
        versus = schema.QatVersusPtq(**check.result)
        if versus.worse:
            log.warning("%s: %s: int8-qat not recommended", m.name, metrics.qat_versus_ptq(versus))
        return schema.QatStatus(status="ok", versus_ptq=versus)

    def _compression(self, m: ModelPlan, precision: str | None = None) -> schema.Compression | None:
        """A variant's recipe (its plan's, completed by its stage's result), and on an int8-qat artifact
        whether QAT was distilled; None for an uncompressed model's artifact made the ordinary way."""
        made = self.outcome(m.model).result
        recipe = {**(m.compression or {}), **made.get("compression", {}), **_measured_compression(made)}
        if precision == "int8-qat" and m.qat is not None and self.outcome(m.qat).result.get("distilled"):
            recipe = {"method": "none", **recipe, "qat_distilled": True}
        return schema.Compression(**{k: v for k, v in recipe.items() if k in schema.Compression.model_fields}) if recipe else None

    def _achieved(self, compression: schema.Compression | None, m: ModelPlan) -> schema.Compression | None:
        """A --prune-speedup variant's compression with the speed-up its artifacts reached where it was asked."""
        if compression is None or m.speedup is None:
            return compression
        measured = self.outcome(m.speedup)
        if not isinstance(measured, StageOutput):
            return compression
        achieved = measured.result["achieved_speedup"]
        if achieved is not None:
            log.info("%s: speed-up %.2fx on %s (asked %.2fx, the latency table predicted %.2fx)", m.name, achieved,
                     compression.latency_on, compression.speedup, compression.predicted_speedup)
        return compression.model_copy(update={"achieved_speedup": achieved})

    def report(self, c: BuildConfig, command: str, plans: list[ModelPlan]) -> schema.Report:
        outcome = self.outcome
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
                compression=self._achieved(self._compression(m), m) if m.parent else None,
                pruning_sensitivity=schema.PruningSensitivity(**model["sensitivity"]) if "sensitivity" in model else None,
                pretrained=schema.Pretrained(**model["pretrained"]) if "pretrained" in model else None,
                training=schema.Training.from_result(model, m.model.config.learning_rate, m.model.config.epochs)
                if m.model.stage.name == "train" else None,
            ))
        first = outcome(plans[0].data).result
        report = schema.Report(
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            command=command,
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
