"""`deploy build`: data -> float model -> QAT -> convert -> verify -> bench -> report, per model."""
from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pipeline import atomic, data, hashing
from pipeline.config import (
    BUILTIN_MODELS, INT8_PRECISIONS, BuildConfig, is_builtin, is_onnx, preprocessing_given, resolved_input_size,
)
from pipeline.errors import QualityGateError, ToolError, UserInputError
from pipeline.report import schema
from pipeline.report.recommend import recommend
from pipeline.report.ingest import benchmark_from_record
from pipeline.runner import Runner
from pipeline.versions import tool_versions
from pipeline.stages.base import StageOutput
from pipeline.stages.bench import BenchConfig, BenchStage, compares_with_host, host_identity
from pipeline.stages.convert import ConvertConfig, ConvertStage
from pipeline.stages.coreml import CoreMLConfig, CoreMLStage
from pipeline.stages.data import DataConfig, DataStage
from pipeline.stages.model import ImportConfig, ImportStage, TrainConfig, TrainStage
from pipeline.stages.ncnn import NcnnConvertConfig, NcnnConvertStage
from pipeline.stages.onnx import OnnxExportConfig, OnnxExportStage, OnnxImportConfig, OnnxImportStage
from pipeline.stages.onnx_tflite import ONNX_TFLITE_PRECISIONS, Onnx2TfConfig, Onnx2TfStage, OnnxTfliteConfig, OnnxTfliteStage
from pipeline.stages.probe import PreprocessingProbeStage, ProbeConfig, candidates as probe_candidates, flags as probe_flags
from pipeline.stages.qat import QatConfig, QatStage
from pipeline.stages.reference import ReferenceConfig, ReferenceStage
from pipeline.stages.twin import KerasTwinStage, TwinConfig
from pipeline.stages.verify import VerifyConfig, VerifyStage
from pipeline.targets import emulated
from pipeline.targets.bench import require_benchmarkable
from pipeline.targets.adb import AdbOptions
from pipeline.targets.spec import AdbTarget, EmulatedTarget, HostTarget, SshTarget, Target, parse_targets
from pipeline.targets.ssh import SshOptions

log = logging.getLogger("deploy")

REPORTED_TOOLS = (
    "mobile-deploy", "tensorflow", "tf-keras", "tensorflow-model-optimization",
    "ai-edge-litert", "numpy", "scikit-learn", "tf2onnx", "onnx", "onnxruntime", "pnnx", "ncnn", "onnx2tf",
)


@dataclass
class ModelRun:
    """What one model's stages produced, gathered for the report."""

    name: str
    source: str
    data: StageOutput
    float_model: StageOutput
    reference: StageOutput
    preprocessing: data.Preprocessing
    qat: schema.QatStatus
    artifacts: list[schema.Artifact]
    reference_runtime: str = "tf-keras"
    probe: schema.PreprocessingProbe | None = None
    twin: schema.KerasTwin | None = None


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


def _preprocessing(config: BuildConfig, height: int, width: int, channels: int = 3) -> data.Preprocessing:
    mean, std = list(config.mean), list(config.std)
    for flag, values in (("--mean", mean), ("--std", std)):
        if channels == 1 and len(values) == 3 and len(set(values)) > 1:
            raise UserInputError(f"{flag} {','.join(f'{v:g}' for v in values)}: the model takes 1 channel (grayscale); give one value")
    mean, std = (mean[:1], std[:1]) if channels == 1 else (mean * 3 if len(mean) == 1 else mean, std * 3 if len(std) == 1 else std)
    return data.Preprocessing(height, width, config.channel_order, tuple(mean), tuple(std), channels=channels)


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
    def __init__(self, config: BuildConfig, command: str):
        self.config = config
        self.command = command
        self.data_fingerprint = data.fingerprint(config.data)  # checks the data before anything is written
        self.targets = parse_targets(config.targets)
        for target in self.targets:  # an unsupported target fails before minutes of training
            require_benchmarkable(target)
        _check_out_outside_data(config)
        self.out = prepare_out_dir(config.out)
        self.runner = Runner(self.out, config.force)
        self.failures: list[schema.ArtifactFailure] = []

    def _data(self, height: int, width: int, channels: int = 3) -> StageOutput:
        c = self.config
        return self.runner.run(
            DataStage(), DataConfig(source=c.data, height=height, width=width, val_fraction=c.val_fraction, seed=c.seed,
                                    channels=channels),
            label=f"{c.data} {height}x{width}x{channels}", external={"data": self.data_fingerprint},
        )

    def _float_model(self, name: str, source: str) -> tuple[StageOutput, StageOutput, data.Preprocessing, dict]:
        c = self.config
        if is_builtin(source):
            size = resolved_input_size(c)
            data_out = self._data(size, size)
            prep = _preprocessing(c, size, size)
            model_out = self.runner.run(
                TrainStage(),
                TrainConfig(
                    architecture=source, input_size=size, alpha=c.alpha, preprocessing=prep.to_dict(),
                    epochs=c.epochs, batch_size=c.batch_size, learning_rate=c.learning_rate, seed=c.seed,
                    augment=c.augment,
                ),
                {"data": data_out}, label=name,
            )
            return data_out, model_out, prep, {}
        path = Path(source).resolve()
        if not path.exists():
            raise UserInputError(f"--model {source}: file not found (built-in models: {', '.join(BUILTIN_MODELS)})")
        if is_onnx(source):
            model_out = self.runner.run(
                OnnxImportStage(), OnnxImportConfig(path=str(path), input_shape=c.input_shape),
                label=name, external={"model": hashing.digest(path)},
            )
        else:
            model_out = self.runner.run(
                ImportStage(), ImportConfig(path=str(path), trusted=c.trust_model),
                label=name, external={"model": hashing.digest(path)},
            )
        height, width, channels = model_out.result["input_shape"]
        if c.input_size is not None and (c.input_size, c.input_size) != (height, width):
            log.warning("--input-size %s ignored for %s: the model's input is %dx%d", c.input_size, source, height, width)
        if c.alpha is not None:
            log.warning("--alpha ignored for %s: it applies to built-in architectures only", source)
        data_out = self._data(height, width, channels)
        classes = data_out.result["class_names"]
        if model_out.result["num_classes"] != len(classes):
            raise UserInputError(
                f"{source}: model outputs {model_out.result['num_classes']} classes but {c.data} has {len(classes)} "
                f"class folders; use the data the model was trained on"
            )
        # Issue 10: the preprocessing is measured on the model as given unless the user gave it; then a
        # Keras 3 model (or one with preprocessing layers) becomes its tf_keras twin, proven under it.
        candidates = [] if preprocessing_given(c) else probe_candidates(height, width, channels)
        prep, probe = self._probe(name, source, model_out, data_out, candidates, _preprocessing(c, height, width, channels))
        model_out, info = self._keras_twin(name, model_out, data_out, prep)
        if info.get("transform"):
            prep = prep.folded(info["transform"]["scale"], info["transform"]["offset"])
        return data_out, model_out, prep, {**info, "probe": probe}

    def _keras_twin(self, name, model_out, data_out, prep) -> tuple[StageOutput, dict]:
        """The twin stage for a model that needs one; ({"twin": KerasTwin, "transform": ..., "original": import output} or {})."""
        if not model_out.result.get("needs_twin"):
            return model_out, {}
        twin_out = self.runner.run(
            KerasTwinStage(), TwinConfig(proof_preprocessings=[prep.to_dict()], val_max_images=self.config.val_max_images,
                                          seed=self.config.seed),
            {"model": model_out, "data": data_out}, label=name,
        )
        r = twin_out.result
        twin = schema.KerasTwin(status=r["status"], reason=r.get("reason"), max_abs_diff=(r.get("proof") or {}).get("max_abs_diff"),
                                removed=r.get("removed", []), folded=r.get("folded", []))
        if r["status"] != "ok":
            log.warning("%s: %s; the model is used as it is (no QAT)", name, r["reason"])
            return model_out, {"twin": twin}
        return twin_out, {"twin": twin, "transform": r["input_transform"], "original": model_out}

    def _probe(self, name, source, model_out, data_out, candidates, given):
        """The preprocessing the user's model takes (before any folded layer): the best candidate (logged
        unless `given` is None), or `given` when there are no candidates."""
        if not candidates:
            return given, None
        out = self.runner.run(
            PreprocessingProbeStage(),
            ProbeConfig(candidates=[{"name": n, "preprocessing": p.to_dict()} for n, p in candidates],
                        val_max_images=self.config.val_max_images, seed=self.config.seed),
            {"model": model_out, "data": data_out}, label=name,
        )
        best = out.result["candidates"][out.result["best"]]
        if given is not None:
            log.info("%s: no preprocessing given; measured float top-1 %.1f %% with %s (%s), the best of %d conventions",
                     source, 100 * best["top1"], best["name"], probe_flags(best["preprocessing"]), len(candidates))
        probe = schema.PreprocessingProbe(chosen=best["name"], candidates=out.result["candidates"])
        return data.Preprocessing.from_dict(best["preprocessing"]), probe

    def _check_given_preprocessing(self, name, source, model_out, data_out, reference, info) -> None:
        """The user's preprocessing leaves the float model near chance: measure the others and say which flags to pass."""
        chance = 1.0 / max(1, model_out.result["num_classes"])
        if is_builtin(source) or not preprocessing_given(self.config) or reference.result["top1"] > chance + 0.05:
            return
        height, width, channels = model_out.result["input_shape"]
        original = info.get("original", model_out)  # the model as given: the probe's candidates are what it takes
        _, probe = self._probe(name, source, original, data_out, probe_candidates(height, width, channels), None)
        best = max(probe.candidates, key=lambda p: p.top1)
        if best.top1 >= reference.result["top1"] + 0.25:
            log.warning("%s: float top-1 is %.1f %% (chance %.1f %%) with the preprocessing given, %.1f %% with %s: pass %s",
                        source, 100 * reference.result["top1"], 100 * chance, 100 * best.top1, best.name, probe_flags(best.preprocessing))

    def _qat(self, name: str, source: str, model_out, data_out, prep, twin=None) -> tuple[StageOutput | None, schema.QatStatus]:
        c = self.config
        if twin is not None and twin.status != "ok":  # a Keras 3 model tfmot cannot take, and no twin
            return self._no_qat(source, twin.reason)
        qat_out = self.runner.run(
            QatStage(),
            QatConfig(preprocessing=prep.to_dict(), epochs=c.qat_epochs, batch_size=c.batch_size,
                      learning_rate=c.qat_learning_rate, seed=c.seed, augment=c.augment),
            {"model": model_out, "data": data_out}, label=name,
        )
        if qat_out.result["status"] == "ok":
            return qat_out, schema.QatStatus(status="ok")
        return self._no_qat(source, qat_out.result["reason"])

    def _no_qat(self, source: str, reason: str) -> tuple[None, schema.QatStatus]:
        if self.config.require_qat:
            raise UserInputError(f"{source}: {reason}; QAT is impossible and --require-qat is set")
        log.warning("%s: %s; falling back to post-training quantization (int8-ptq)", source, reason)
        return None, schema.QatStatus(status="unsupported", reason=reason)

    def _artifact(self, name, precision, source_model, data_out, reference, prep) -> schema.Artifact:
        c = self.config
        is_int8 = precision in INT8_PRECISIONS
        converted = self.runner.run(
            ConvertStage(),
            ConvertConfig(model_name=name, precision=precision, int8_io=is_int8 and c.io == "int8",
                          calibration_images=c.calibration_images, seed=c.seed, preprocessing=prep.to_dict()),
            {"model": source_model, "data": data_out}, label=f"{name} {precision}",
        )
        return self._finish(name, converted, data_out, reference, prep)

    def _attempt(self, name: str, fmt: str, precision: str, make) -> list[schema.Artifact]:
        """Build one artifact; a tool failure is recorded and the build goes on with the others."""
        try:
            return [make()]
        except ToolError as e:
            log.error("%s %s %s: %s", name, fmt, precision, e)
            self.failures.append(schema.ArtifactFailure(model=name, format=fmt, precision=precision, error=str(e)))
            return []

    def _onnx_source(self, name, model_out, data_out, prep) -> StageOutput:
        return self.runner.run(
            OnnxExportStage(), OnnxExportConfig(model_name=name, preprocessing=prep.to_dict()),
            {"model": model_out, "data": data_out}, label=name,
        )

    def _ncnn_artifact(self, name, precision, onnx_out, data_out, reference, prep) -> schema.Artifact:
        c = self.config
        converted = self.runner.run(
            NcnnConvertStage(),
            NcnnConvertConfig(
                model_name=name, precision=precision, preprocessing=prep.to_dict(),
                calibration_images=c.calibration_images if precision == "int8" else 0, seed=c.seed,
                calibration_method=c.ncnn_calibration if precision == "int8" else "none",
                percentile=c.ncnn_percentile if precision == "int8" and c.ncnn_calibration == "percentile" else 0,
                float_layers=c.ncnn_float_layers if precision == "int8" else [],
            ),
            {"onnx": onnx_out, "data": data_out}, label=f"{name} ncnn {precision}",
        )
        return self._finish(name, converted, data_out, reference, prep)

    def _onnx_tflite_artifacts(self, name, precisions, onnx_out, data_out, reference, prep) -> list[schema.Artifact]:
        c = self.config
        precisions = [p for p in precisions if p in ONNX_TFLITE_PRECISIONS]
        try:
            converted = self.runner.run(
                Onnx2TfStage(),
                Onnx2TfConfig(preprocessing=prep.to_dict(), quantize=any(p in ("dynamic-int8", "int8-ptq") for p in precisions),
                              calibration_images=c.calibration_images, seed=c.seed),
                {"onnx": onnx_out, "data": data_out}, label=name,
            )
        except ToolError as e:
            log.error("%s tflite: %s", name, e)
            self.failures += [schema.ArtifactFailure(model=name, format="tflite", precision=p, error=str(e)) for p in precisions]
            return []
        artifacts = []
        for p in precisions:
            artifacts += self._attempt(name, "tflite", p, lambda p=p: self._finish(name, self.runner.run(
                OnnxTfliteStage(), OnnxTfliteConfig(model_name=name, precision=p, preprocessing=prep.to_dict()),
                {"onnx2tf": converted, "onnx": onnx_out, "data": data_out}, label=f"{name} {p}",
            ), data_out, reference, prep))
        return artifacts

    def _finish(self, name, converted: StageOutput, data_out, reference, prep) -> schema.Artifact:
        """Verify in the artifact's own runtime, benchmark, publish: the same for every format."""
        r = converted.result
        precision, fmt = r["precision"], r["format"]
        is_int8 = precision in (*INT8_PRECISIONS, "int8")
        label = f"{name} {fmt} {precision}"
        verified = self.runner.run(
            VerifyStage(), VerifyConfig(preprocessing=prep.to_dict(), check_int8=is_int8,
                                        val_max_images=self.config.val_max_images, seed=self.config.seed),
            {"artifact": converted, "data": data_out, "reference": reference}, label=label,
        )
        benchmarks = []
        for target in self._targets_for(fmt, label):
            try:
                benchmarks += [self._bench(converted, data_out, label, target, threads) for threads in self._threads()]
            except ToolError as e:
                if isinstance(target, HostTarget):
                    raise
                # A device or emulator that cannot run this artifact loses one row, not the artifact.
                log.error("%s on %s: %s", label, target.name, e)
                self.failures.append(schema.ArtifactFailure(model=name, format=fmt, precision=precision, error=str(e), target=target.name))
        path, metadata_path = self._publish(name, converted)
        r, v = converted.result, verified.result
        return schema.Artifact(
            id=r["id"], model=name, format=fmt, precision=precision,
            path=path, metadata_path=metadata_path,
            size_bytes=r["size_bytes"], io=r["io"], calibration_images=r["calibration_images"],
            accuracy=schema.Accuracy(top1=v["top1"], agreement=v["agreement"], n=v["n"], max_abs_diff=v.get("max_abs_diff")),
            accuracy_drop_points=round(100 * (reference.result["top1"] - v["top1"]), 4),
            int8_check=v["int8_check"], benchmarks=benchmarks,
        )

    def _threads(self) -> list[int]:
        from pipeline.targets.host import default_thread_counts

        return self.config.threads or default_thread_counts()

    def _targets_for(self, fmt: str, label: str) -> list[Target]:
        """The targets that can run this format: emulators and phones have no onnxruntime."""
        usable = [t for t in self.targets if fmt != "onnx" or not isinstance(t, EmulatedTarget | AdbTarget)]
        for target in self.targets:
            if target not in usable:
                log.warning("%s: not benchmarked on %s (no %s runtime there)", label, target.name, fmt)
        return usable

    def _bench(self, converted: StageOutput, data_out: StageOutput, label: str, target: Target, threads: int) -> schema.Benchmark:
        c = self.config
        # The host is identified by its CPU, an emulator by its runtimes' versions, a board by its
        # address (its CPU is only known once it ran).
        identity = host_identity() if isinstance(target, HostTarget) else target.name
        if isinstance(target, EmulatedTarget):
            identity += "|" + emulated.installed(target.arch)
        ssh = SshOptions(python=c.ssh_python, key=c.ssh_key, known_hosts=c.ssh_known_hosts, dir=c.ssh_dir) if isinstance(target, SshTarget) else None
        adb = AdbOptions(benchmark_model=c.adb_benchmark_model, benchncnn=c.adb_benchncnn,
                         cooldown_s=c.adb_cooldown_s) if isinstance(target, AdbTarget) else None
        # Emulators and boards are compared with the host on validation images: they need the data.
        check_data = {"data": data_out} if compares_with_host(target) else {}
        out = self.runner.run(
            BenchStage(),
            BenchConfig(target=target.name, target_identity=identity, threads=threads, warmup=c.warmup, runs=c.runs, ssh=ssh, adb=adb,
                        fp16=converted.result["format"] == "ncnn" and converted.result["precision"] == "fp16", check_seed=c.seed),
            {"artifact": converted, **check_data}, label=f"{label} {target.name} {threads} thread(s)",
        )
        if out.result.get("partial"):  # reported once, never reused: the next build measures again
            shutil.rmtree(out.dir, ignore_errors=True)
        return benchmark_from_record(out.result)

    def _publish(self, name: str, converted: StageOutput) -> tuple[str, str]:
        """Copy the artifact and its metadata out of the cache to artifacts/<model>/."""
        folder = self.out / "artifacts" / name
        folder.mkdir(parents=True, exist_ok=True)
        for file in (*converted.result.get("files", [converted.result["file"]]), converted.result["recipe"]):
            copy = atomic.copy_tree if converted.path(file).is_dir() else atomic.copy_file
            copy(converted.path(file), folder / file)
        rel = folder.relative_to(self.out)
        return str(rel / converted.result["file"]), str(rel / converted.result["recipe"])

    def _coreml(self, name: str, model_out: StageOutput, data_out: StageOutput, prep) -> None:
        """The float model as Core ML for the iOS app, published beside the TFLite artifacts."""
        out = self.runner.run(
            CoreMLStage(), CoreMLConfig(model_name=name, preprocessing=prep.to_dict()),
            {"model": model_out, "data": data_out}, label=name,
        )
        path, _ = self._publish(name, out)
        log.info("Core ML model (spec checked): %s", self.out / path)

    def model(self, name: str, source: str) -> ModelRun:
        c = self.config
        data_out, model_out, prep, info = self._float_model(name, source)
        reference = self.runner.run(
            ReferenceStage(), ReferenceConfig(preprocessing=prep.to_dict(), val_max_images=c.val_max_images, seed=c.seed),
            {"model": model_out, "data": data_out}, label=name,
        )
        self._check_given_preprocessing(name, source, model_out, data_out, reference, info)
        precisions = list(c.precisions)
        qat_out, qat_status = None, schema.QatStatus(status="not-requested")
        onnx_model = is_onnx(source)
        if "int8-qat" in precisions and "tflite" in c.formats:
            if onnx_model:
                reason = "QAT needs a Keras model; ONNX input gets post-training quantization (int8-ptq)"
                log.warning("%s: %s", source, reason)
                qat_status = schema.QatStatus(status="unsupported", reason=reason)
            else:
                qat_out, qat_status = self._qat(name, source, model_out, data_out, prep, info.get("twin"))
            if qat_out is None:
                precisions.remove("int8-qat")
                if "int8-ptq" not in precisions:
                    precisions.append("int8-ptq")
        artifacts: list[schema.Artifact] = []
        if "tflite" in c.formats and not onnx_model:
            artifacts = [
                self._artifact(name, p, qat_out if p == "int8-qat" else model_out, data_out, reference, prep)
                for p in precisions
            ]
        if c.coreml and not onnx_model:
            self._coreml(name, model_out, data_out, prep)
        onnx_out = None
        if onnx_model or "onnx" in c.formats or "ncnn" in c.formats:
            try:
                onnx_out = self._onnx_source(name, model_out, data_out, prep)
            except ToolError as e:
                log.error("%s onnx: %s", name, e)
                wanted = [("onnx", "fp32")] * ("onnx" in c.formats) + [("ncnn", p) for p in c.ncnn_precisions] * ("ncnn" in c.formats)
                wanted += [("tflite", p) for p in precisions] * ("tflite" in c.formats and onnx_model)
                self.failures += [schema.ArtifactFailure(model=name, format=f, precision=p, error=str(e)) for f, p in wanted]
        if onnx_out is not None:
            if "tflite" in c.formats and onnx_model:
                artifacts += self._onnx_tflite_artifacts(name, precisions, onnx_out, data_out, reference, prep)
            if "onnx" in c.formats:
                artifacts += self._attempt(name, "onnx", "fp32", lambda: self._finish(name, onnx_out, data_out, reference, prep))
            if "ncnn" in c.formats:
                for p in c.ncnn_precisions:
                    artifacts += self._attempt(name, "ncnn", p, lambda p=p: self._ncnn_artifact(name, p, onnx_out, data_out, reference, prep))
        runtime = "onnxruntime" if onnx_model else "tf-keras"
        return ModelRun(name, source, data_out, model_out, reference, prep, qat_status, artifacts, runtime,
                        info.get("probe"), info.get("twin"))

    def report(self, runs: list[ModelRun]) -> schema.Report:
        c = self.config
        first = runs[0].data.result
        models = [
            schema.ModelInfo(
                name=r.name, source=r.source, input_shape=r.float_model.result["input_shape"],
                num_classes=r.float_model.result["num_classes"], labels=r.data.result["class_names"],
                params=r.float_model.result["params"], macs=r.float_model.result["macs"],
                float_accuracy=schema.Accuracy(top1=r.reference.result["top1"], agreement=1.0, n=r.reference.result["n"]),
                qat=r.qat, preprocessing=r.preprocessing.to_dict(), reference_runtime=r.reference_runtime,
                preprocessing_probe=r.probe, keras_twin=r.twin,
            )
            for r in runs
        ]
        artifacts = [a for r in runs for a in r.artifacts]
        report = schema.Report(
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            command=self.command,
            tools=tool_versions(REPORTED_TOOLS),
            data=schema.DataInfo(source=c.data, train=first["train"], val=first["val"], skipped=first["skipped"],
                                 val_used=runs[0].reference.result["n"], augment=c.augment),
            models=models,
            artifacts=artifacts,
            quality_gate=schema.QualityGate(max_accuracy_drop_points=c.max_accuracy_drop, failures=gate_failures(artifacts, c.max_accuracy_drop)),
            failures=self.failures,
        )
        constraints = schema.Constraints(
            max_accuracy_drop=c.max_accuracy_drop, max_size_mb=c.max_size_mb, max_latency_ms=c.max_latency_ms)
        return report.model_copy(update={"recommendations": recommend(report, constraints)})


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


def build(config: BuildConfig, command: str = "deploy build") -> schema.Report:
    """Run every stage for every model, write report.json, report.md and report.html, then apply the gates."""
    from pipeline import report as report_files

    run = Build(config, command)
    runs = [run.model(name, source) for name, source in _model_names(config)]
    result = run.report(runs)
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
