"""Plan rules: which stages a build needs, per model, as nodes of the plan.

`Planner.model` plans a model's core (data, float model, reference); then every rule in RULES, in
order, adds its nodes and the artifacts the report lists. A new stage or format is a stage module
plus one `@rule` function here (or anywhere imported before the build: tests add toy rules).
A rule reads the config and the nodes planned so far; it never runs anything, except through
`Planner.resolve` for a cheap probe whose result the plan depends on.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import data
from pipeline.config import (
    BUILTIN_MODELS, INT8_PRECISIONS, BuildConfig, is_builtin, is_onnx, preprocessing_given, qat_augment,
    resolved_augment, resolved_input_size,
)
from pipeline.errors import UserInputError
from pipeline.resources import usable_cores
from pipeline.compress.distill import DistillConfig
from pipeline.plan import MACHINE, Node, Plan, When, device_lease
from pipeline.report import schema
from pipeline.stages.base import StageOutput
from pipeline.stages.bench import BenchConfig, BenchStage, compares_with_host, host_identity
from pipeline.stages.convert import ConvertConfig, ConvertStage
from pipeline.stages.coreml import CoreMLConfig, CoreMLStage
from pipeline.stages.data import DataConfig, DataStage
from pipeline.stages.model import ImportConfig, ImportStage, TrainConfig, TrainStage
from pipeline.stages.mnn import MnnConvertConfig, MnnConvertStage
from pipeline.stages.ncnn import NcnnConvertConfig, NcnnConvertStage
from pipeline.stages.onnx import OnnxExportConfig, OnnxExportStage, OnnxImportConfig, OnnxImportStage
from pipeline.stages.onnx_tflite import ONNX_TFLITE_PRECISIONS, Onnx2TfConfig, Onnx2TfStage, OnnxTfliteConfig, OnnxTfliteStage
from pipeline.stages.clustering import ClusteringConfig, ClusteringStage
from pipeline.stages.prune_choice import PruneChoiceConfig, PruneChoiceStage, SpeedupConfig, SpeedupStage
from pipeline.stages.prune import PruneConfig, PruneStage, SensitivityConfig, SensitivityStage, recipe as prune_recipe
from pipeline.stages.sparsity import SparsityConfig, SparsityStage
from pipeline.stages.profile import ProfileConfig, ProfileStage
from pipeline.stages.probe import PreprocessingProbeStage, ProbeConfig, candidates as probe_candidates, flags as probe_flags
from pipeline.stages.qat import QatConfig, QatStage
from pipeline.stages.qat_check import QatCheckConfig, QatCheckStage
from pipeline.stages.reference import ReferenceConfig, ReferenceStage
from pipeline.stages.twin import KerasTwinStage, TwinConfig
from pipeline.stages.verify import VerifyConfig, VerifyStage
from pipeline.stages.verify_target import VerifyTargetConfig, VerifyTargetStage
from pipeline import hashing
from pipeline.targets import emulated
from pipeline.targets.adb import AdbOptions
from pipeline.targets.spec import AdbTarget, EmulatedTarget, HostTarget, SshTarget, Target, runs_format
from pipeline.targets.ssh import SshOptions

log = logging.getLogger("deploy")



def _sample(c: BuildConfig) -> dict:
    """The validation sample every accuracy figure uses (ValidationSampleConfig's fields)."""
    return {"val_max_images": c.val_max_images, "seed": c.seed}

@dataclass
class ArtifactPlan:
    """One artifact the report lists: its conversion, verification and benchmarks."""

    model: str
    format: str
    precision: str
    converted: Node
    verify: Node
    benches: list[tuple[Target, Node]]
    target_verifies: list[tuple[Target, Node]] = field(default_factory=list)  # accuracy on ARM kernels (rule on_arm_kernels)
    profiles: list[tuple[Target, int, Node]] = field(default_factory=list)  # (target, threads, node): rule op_profiles


@dataclass
class ModelPlan:
    name: str
    source: str
    data: Node
    model: Node
    reference: Node
    preprocessing: data.Preprocessing
    precisions: list[str]  # TFLite precisions still wanted (QAT may swap int8-qat for int8-ptq)
    reference_runtime: str = "tf-keras"
    qat: Node | None = None
    qat_check: Node | None = None  # int8-qat against int8-ptq, when both are built
    qat_status: schema.QatStatus = field(default_factory=lambda: schema.QatStatus(status="not-requested"))
    artifacts: list[ArtifactPlan] = field(default_factory=list)
    published: list[Node] = field(default_factory=list)  # extra files copied to artifacts/<model>/ (Core ML)
    probe: schema.PreprocessingProbe | None = None  # user models: the preprocessing measured (issue 10)
    twin: schema.KerasTwin | None = None  # Keras 3 models: the tf_keras twin that stands in for them
    # A compressed variant (Planner.variant): the model it came from, its recipe, the float model that
    # teaches it with --distill (None: the model's own float model).
    parent: str | None = None
    compression: dict | None = None
    teacher: Node | None = None
    baseline: Node | None = None  # the reference accuracy drops are measured from (None: its own; a variant: the uncompressed model's)
    speedup: Node | None = None  # a --prune-speedup variant: its int8 TFLite artifact timed against its parent's (rule pruned_speedup)
    variants: list["ModelPlan"] = field(default_factory=list)

    def with_variants(self) -> list["ModelPlan"]:
        """This plan and its variants (and theirs), in planning order: each is its own model in the report."""
        return [self, *(v for variant in self.variants for v in variant.with_variants())]

    @property
    def onnx(self) -> bool:
        return is_onnx(self.source)

    @property
    def prep(self) -> dict:
        return self.preprocessing.to_dict()


Rule = Callable[["Planner", ModelPlan], None]
RULES: list[Rule] = []

# Training inputs this large (pixels) get every core by default (Planner.train_threads). A trade,
# measured on 2 cores (docs/scale-out.md): a second thread sped one training up 1.2-2.0x at 32x32
# (by family) and 1.8x at 224x224, but two 2-thread trainings side by side ran each 1.8x slower
# than alone, so several small models train sooner one thread each, side by side; a large input
# (a user's photos at 224) is mostly one long training that wants every core.
LARGE_INPUT_PIXELS = 128 * 128

# A user model whose float top-1 with the preprocessing given is within this of chance may be fed
# wrongly: the probe measures the other conventions (it warns only when one is 25 points better).
# 10 points, not 5: a model fed garbage scored 15.1 % on 10 classes on one CPU and under 15 % on
# another (tests/test_user_models.py), and a few per cent above chance is no sign it is fed right.
PROBE_NEAR_CHANCE = 0.10


def rule(function: Rule) -> Rule:
    """Register a plan rule; rules run in registration order for every model."""
    RULES.append(function)
    return function


class Planner:
    """Makes the plan for a build; `resolve` runs a probe node while planning (Scheduler.run)."""

    def __init__(self, config: BuildConfig, targets: list[Target], data_fingerprint: str,
                 resolve: Callable[[Node], StageOutput], threads: list[int]):
        self.config, self.targets, self.data_fingerprint = config, targets, data_fingerprint
        self.plan = Plan()
        self._resolve = resolve
        self.threads = threads
        self._rule_index = -1  # the rule being applied (Planner.variant applies those after it)

    def train_threads(self, prep: dict) -> int:
        """TensorFlow threads a training stage runs with: in its key (runner._run pins them).
        --train-threads, else every core for inputs of LARGE_INPUT_PIXELS and more, else 1 (why: there).
        Never --jobs: the same key must give the same weights whichever executor runs it."""
        if self.config.train_threads:
            return self.config.train_threads
        return usable_cores() if prep["height"] * prep["width"] >= LARGE_INPUT_PIXELS else 1

    def fit_settings(self, prep: dict) -> dict:
        """FitConfig's fields every training stage takes from the build (epochs and rate are per stage)."""
        c = self.config
        return {"preprocessing": prep, "batch_size": c.batch_size, "seed": c.seed, "augment": resolved_augment(c),
                "tf_threads": self.train_threads(prep)}

    def resolve(self, node: Node) -> StageOutput:
        self.plan.probes.append(node)
        return self._resolve(node)

    def node(self, *args, **kwargs) -> Node:
        return self.plan.node(*args, **kwargs)

    # ---- a model's core: data, float model, float reference ------------------------------------

    def data(self, height: int, width: int, channels: int = 3) -> Node:
        c = self.config
        return self.node(DataStage(), DataConfig(source=c.data, height=height, width=width, val_fraction=c.val_fraction, seed=c.seed,
                                                 channels=channels),
                         label=f"{c.data} {height}x{width}x{channels}", external={"data": self.data_fingerprint}, fatal=True)

    def preprocessing(self, height: int, width: int, channels: int = 3) -> data.Preprocessing:
        c = self.config
        mean, std = list(c.mean), list(c.std)
        for flag, values in (("--mean", mean), ("--std", std)):
            if channels == 1 and len(values) == 3 and len(set(values)) > 1:
                raise UserInputError(f"{flag} {','.join(f'{v:g}' for v in values)}: the model takes 1 channel (grayscale); give one value")
        mean, std = (mean[:1], std[:1]) if channels == 1 else (mean * 3 if len(mean) == 1 else mean, std * 3 if len(std) == 1 else std)
        return data.Preprocessing(height, width, c.channel_order, tuple(mean), tuple(std), channels=channels)

    def _pretrained_digest(self, architecture: str, size: int) -> dict:
        """--pretrained's file as an input of the train stage (a changed file trains again); the
        one-line errors for an absent file, before anything runs."""
        from pipeline.models import transfer
        from pipeline.models.architectures import resolved_alpha

        c = self.config
        if not c.pretrained:
            return {}
        if c.pretrained == "imagenet":
            path = transfer.imagenet_file(architecture, size, resolved_alpha(architecture, c.alpha))
        else:
            path = Path(c.pretrained)
            if not path.exists():
                raise UserInputError(f"--pretrained {c.pretrained}: file not found (give 'imagenet' or a Keras model file "
                                     "of the same family)")
        return {"pretrained": hashing.digest(path)}

    def model(self, name: str, source: str) -> ModelPlan:
        c = self.config
        if is_builtin(source):
            size = resolved_input_size(c)
            data_node, prep = self.data(size, size), self.preprocessing(size, size)
            model_node = self.node(
                TrainStage(),
                TrainConfig(architecture=source, input_size=size, alpha=c.alpha, epochs=c.epochs, learning_rate=c.learning_rate,
                            patience=c.early_stopping_patience, pretrained=c.pretrained, trusted=c.trust_model,
                            **self.fit_settings(prep.to_dict())),
                {"data": data_node}, label=name, fatal=True, resources={"GPU": 1},
                external=self._pretrained_digest(source, size),
            )
            info: dict = {}
        else:
            if c.pretrained:
                raise UserInputError(f"--pretrained: --model {source} is a trained model already; --pretrained starts a "
                                     "built-in model (mobilenet_v1, mobilenet_v2, shufflenet_v2, squeezenet) from other weights")
            data_node, model_node, prep, info = self._user_model(name, source)
        reference = self.node(ReferenceStage(), ReferenceConfig(preprocessing=prep.to_dict(), **_sample(c)),
                              {"model": model_node, "data": data_node}, label=name, fatal=True)
        if not is_builtin(source):
            self._check_given_preprocessing(name, source, data_node, reference, info)
        plan = ModelPlan(name, source, data_node, model_node, reference, prep, list(c.precisions),
                         reference_runtime="onnxruntime" if is_onnx(source) else "tf-keras",
                         probe=info.get("probe"), twin=info.get("twin"))
        self._apply_rules(plan, 0)
        return plan

    def _apply_rules(self, plan: ModelPlan, start: int) -> None:
        outer = self._rule_index
        try:
            for index in range(start, len(RULES)):
                self._rule_index = index
                RULES[index](self, plan)
        finally:
            self._rule_index = outer

    def variant(self, parent: ModelPlan, suffix: str, model_node: Node, recipe: dict) -> ModelPlan:
        """A compressed variant of `parent` made by `model_node` (a float Keras model, as train's result):
        named `<parent>-<suffix>`, with its own float reference, it goes through the rules after the
        one calling this (QAT, TFLite, ncnn, ONNX...), its artifacts beside the parent's. `recipe`
        (schema.Compression's fields) is recorded on the variant and on each of its artifacts."""
        name = f"{parent.name}-{suffix}"
        reference = self.node(ReferenceStage(), ReferenceConfig(preprocessing=parent.prep, **_sample(self.config)),
                              {"model": model_node, "data": parent.data}, label=name, fatal=True)
        plan = ModelPlan(name, parent.source, parent.data, model_node, reference, parent.preprocessing, list(parent.precisions),
                         reference_runtime=parent.reference_runtime, twin=parent.twin, parent=parent.name,
                         compression=recipe, teacher=parent.teacher or parent.model, baseline=parent.baseline or parent.reference)
        parent.variants.append(plan)
        self._apply_rules(plan, self._rule_index + 1)
        return plan

    def _user_model(self, name: str, source: str) -> tuple[Node, Node, data.Preprocessing, dict]:
        c = self.config
        path = Path(source).resolve()
        if not path.exists():
            raise UserInputError(f"--model {source}: file not found (built-in models: {', '.join(BUILTIN_MODELS)})")
        if is_onnx(source):
            model_node = self.node(OnnxImportStage(), OnnxImportConfig(path=str(path), input_shape=c.input_shape),
                                   label=name, external={"model": hashing.digest(path)}, fatal=True)
        else:
            model_node = self.node(ImportStage(), ImportConfig(path=str(path), trusted=c.trust_model),
                                   label=name, external={"model": hashing.digest(path)}, fatal=True)
        # The model's input shape decides the data stage's config: a probe, run while planning.
        imported = self.resolve(model_node).result
        height, width, channels = imported["input_shape"]
        if c.input_size is not None and (c.input_size, c.input_size) != (height, width):
            log.warning("--input-size %s ignored for %s: the model's input is %dx%d", c.input_size, source, height, width)
        if c.alpha is not None:
            log.warning("--alpha ignored for %s: it applies to built-in architectures only", source)
        data_node = self.data(height, width, channels)

        def same_class_count(out: StageOutput) -> None:
            classes = out.result["class_names"]
            if imported["num_classes"] != len(classes):
                raise UserInputError(f"{source}: model outputs {imported['num_classes']} classes but {c.data} has {len(classes)} "
                                     f"class folders; use the data the model was trained on")

        data_node.checks.append(same_class_count)
        # Issue 10: the preprocessing is measured on the model as given unless the user gave it; then a
        # Keras 3 model (or one with preprocessing layers) becomes its tf_keras twin, proven under it.
        # Both results shape every later stage's config: probes, run while planning.
        candidates = [] if preprocessing_given(c) else probe_candidates(height, width, channels)
        prep, probe = self._probe(name, source, model_node, data_node, candidates, self.preprocessing(height, width, channels))
        model_node, info = self._keras_twin(name, model_node, imported, data_node, prep)
        if info.get("transform"):
            prep = prep.folded(info["transform"]["scale"], info["transform"]["offset"])
        return data_node, model_node, prep, {**info, "probe": probe, "original": info.get("original", model_node), "imported": imported}

    def _keras_twin(self, name, model_node, imported, data_node, prep) -> tuple[Node, dict]:
        """The twin stage for a model that needs one; ({"twin": KerasTwin, "transform": ..., "original": import node} or {})."""
        if not imported.get("needs_twin"):
            return model_node, {}
        twin_node = self.node(KerasTwinStage(), TwinConfig(proof_preprocessings=[prep.to_dict()], **_sample(self.config)),
                              {"model": model_node, "data": data_node}, label=name, fatal=True)
        r = self.resolve(twin_node).result
        twin = schema.KerasTwin(status=r["status"], reason=r.get("reason"), max_abs_diff=(r.get("proof") or {}).get("max_abs_diff"),
                                removed=r.get("removed", []), folded=r.get("folded", []))
        if r["status"] != "ok":
            log.warning("%s: %s; the model is used as it is (no QAT)", name, r["reason"])
            return model_node, {"twin": twin}
        return twin_node, {"twin": twin, "transform": r["input_transform"], "original": model_node}

    def _probe(self, name, source, model_node, data_node, candidates, given):
        """The preprocessing the user's model takes (before any folded layer): the best candidate (logged
        unless `given` is None), or `given` when there are no candidates."""
        if not candidates:
            return given, None
        node = self.node(PreprocessingProbeStage(),
                         ProbeConfig(candidates=[{"name": n, "preprocessing": p.to_dict()} for n, p in candidates],
                                     **_sample(self.config)),
                         {"model": model_node, "data": data_node}, label=name, fatal=True)
        result = self.resolve(node).result
        best = result["candidates"][result["best"]]
        if given is not None:
            log.info("%s: no preprocessing given; measured float top-1 %.1f %% with %s (%s), the best of %d conventions",
                     source, 100 * best["top1"], best["name"], probe_flags(best["preprocessing"]), len(candidates))
        probe = schema.PreprocessingProbe(chosen=best["name"], candidates=result["candidates"])
        return data.Preprocessing.from_dict(best["preprocessing"]), probe

    def _check_given_preprocessing(self, name, source, data_node, reference, info) -> None:
        """The user's preprocessing leaves the float model near chance: measure the others and say which flags to pass.
        Needs the reference's result, so the reference is a probe for user models given with preprocessing."""
        if not preprocessing_given(self.config):
            return
        imported = info["imported"]
        chance = 1.0 / max(1, imported["num_classes"])
        top1 = self.resolve(reference).result["top1"]
        if top1 > chance + PROBE_NEAR_CHANCE:
            return
        height, width, channels = imported["input_shape"]
        # The model as given: the probe's candidates are what it takes.
        _, probe = self._probe(name, source, info["original"], data_node, probe_candidates(height, width, channels), None)
        best = max(probe.candidates, key=lambda p: p.top1)
        if best.top1 >= top1 + 0.25:
            log.warning("%s: float top-1 is %.1f %% (chance %.1f %%) with the preprocessing given, %.1f %% with %s: pass %s",
                        source, 100 * top1, 100 * chance, 100 * best.top1, best.name, probe_flags(best.preprocessing))

    # ---- an artifact: verified in its own runtime and benchmarked, the same for every format ----

    def artifact(self, m: ModelPlan, fmt: str, precision: str, converted: Node) -> ArtifactPlan:
        label = f"{m.name} {fmt} {precision}"
        is_int8 = precision in (*INT8_PRECISIONS, "int8")
        verify = self.node(VerifyStage(), VerifyConfig(preprocessing=m.prep, check_int8=is_int8, **_sample(self.config)),
                           {"artifact": converted, "data": m.data, "reference": m.reference}, label=label)
        benches = [(target, self.bench(converted, m.data, fmt, precision, label, target, threads))
                   for target in self.targets_for(fmt, label) for threads in self.threads]
        planned = ArtifactPlan(m.name, fmt, precision, converted, verify, benches)
        m.artifacts.append(planned)
        return planned

    def targets_for(self, fmt: str, label: str) -> list[Target]:
        """The targets that have a runtime for this format (spec.runs_format)."""
        usable = [t for t in self.targets if runs_format(t, fmt)]
        for target in self.targets:
            if target not in usable:
                log.warning("%s: not benchmarked on %s (no %s runtime there)", label, target.name, fmt)
        return usable

    def ssh_options(self) -> SshOptions:
        c = self.config
        return SshOptions(python=c.ssh_python, key=c.ssh_key, known_hosts=c.ssh_known_hosts, dir=c.ssh_dir)

    @staticmethod
    def target_identity(target: Target) -> str:
        """What a result measured on `target` is keyed by, so one from another machine is never reused:
        the host by its CPU, an emulator by its runtimes' versions, a board or phone by its address
        (its CPU is only known once it ran)."""
        if isinstance(target, HostTarget):
            return host_identity()
        if isinstance(target, EmulatedTarget):
            return target.name + "|" + emulated.installed(target.arch)
        return target.name

    def bench(self, converted: Node, data_node: Node, fmt: str, precision: str, label: str, target: Target, threads: int) -> Node:
        c = self.config
        ssh = self.ssh_options() if isinstance(target, SshTarget) else None
        adb = AdbOptions(benchmark_model=c.adb_benchmark_model, benchncnn=c.adb_benchncnn,
                         cooldown_s=c.adb_cooldown_s) if isinstance(target, AdbTarget) else None
        on_this_machine = isinstance(target, HostTarget | EmulatedTarget)
        # Emulators and boards are compared with the host on validation images: they need the data.
        check_data = {"data": data_node} if compares_with_host(target) else {}
        return self.node(
            BenchStage(),
            BenchConfig(target=target.name, target_identity=self.target_identity(target), threads=threads, warmup=c.warmup, runs=c.runs, ssh=ssh, adb=adb,
                        fp16=runs_fp16(fmt, precision), check_seed=c.seed),
            {"artifact": converted, **check_data}, label=f"{label} {target.name} {threads} thread(s)",
            **({"lease": MACHINE} if on_this_machine else on_device(target)),
        )


def on_device(target: Target) -> dict:
    """A node's placement on a phone or board: its lease here, and the Ray resource of the node it is attached to."""
    return {"lease": device_lease(target.name), "resources": {device_lease(target.name): 1}}


def timed_on(target: Target) -> dict:
    """A timing node's placement on a real target: alone on the host (the MACHINE lease), else on the device."""
    return {"lease": MACHINE} if isinstance(target, HostTarget) else on_device(target)


def runs_fp16(fmt: str, precision: str) -> bool:
    """The runner's --fp16: ncnn's fp16 storage and arithmetic, MNN's low precision, for their fp16 artifacts."""
    return fmt in ("ncnn", "mnn") and precision == "fp16"


# ---- the rules, in the order their artifacts appear in the report --------------------------------


def distill_config(c: BuildConfig) -> DistillConfig | None:
    return DistillConfig(temperature=c.distill_temperature, alpha=c.distill_alpha) if c.distill else None


@rule
def prune(p: Planner, m: ModelPlan) -> None:
    """--prune l1-filter: a pruned, fine-tuned variant `<model>-p<keep %>` (docs/compression.md)."""
    c = p.config
    if c.prune != "l1-filter" or not _compressible(m, "--prune l1-filter"):
        return
    sensitivity = p.node(SensitivityStage(), SensitivityConfig(preprocessing=m.prep, seed=c.seed), {"model": m.model, "data": m.data},
                         label=m.name, fatal=True)
    goal, inputs = {"keep_macs": c.prune_keep_macs}, {"sensitivity": sensitivity}
    if c.prune_speedup:
        target = _latency_target(p)
        goal = {"speedup": c.prune_speedup, "latency_on": target.name}
        if "tflite" not in c.formats or not {"int8-ptq", "int8-qat"} & set(m.precisions):
            log.warning("%s: --prune-speedup: the achieved speed-up is measured on the int8 TFLite artifacts, and this build makes "
                        "none (add tflite to --formats and int8-ptq to --precisions)", m.name)
        inputs["choice"] = p.node(
            PruneChoiceStage(),
            PruneChoiceConfig(speedup=c.prune_speedup, target=target.name, target_identity=p.target_identity(target),
                              threads=c.latency_threads, ssh=p.ssh_options() if isinstance(target, SshTarget) else None),
            {"model": m.model, "sensitivity": sensitivity}, label=f"{m.name} {c.prune_speedup:g}x on {target.name}", fatal=True,
            **timed_on(target))
    if c.prune_ratios_from:
        goal = {"ratios": _ratios_from(c.prune_ratios_from, m.name), "ratios_from": str(c.prune_ratios_from)}
    config = PruneConfig(method=c.prune, **goal, epochs=c.prune_epochs, learning_rate=c.prune_learning_rate,
                         patience=c.early_stopping_patience, distill=distill_config(c), **p.fit_settings(m.prep))
    suffix = (f"p{c.prune_speedup:g}x" if c.prune_speedup else "pgiven" if c.prune_ratios_from
              else f"p{round(100 * c.prune_keep_macs)}")
    _compressed_variant(p, m, PruneStage(), config, c.prune, suffix, prune_recipe(config), inputs)


def _ratios_from(path: Path, model: str) -> dict[str, float]:
    """--prune-ratios-from: the group ratios of `model`'s filter-pruned variant in a report.json."""
    try:
        report = schema.Report.model_validate_json(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise UserInputError(f"--prune-ratios-from {path}: not a readable report.json ({str(e).splitlines()[0]})") from None
    found = [v.compression.group_ratios for v in report.models
             if v.parent == model and v.compression and v.compression.method == "l1-filter" and v.compression.group_ratios]
    if not found:
        raise UserInputError(f"--prune-ratios-from {path}: no filter-pruned variant of {model} in it "
                             f"(models: {', '.join(v.name for v in report.models)})")
    return found[0]


def _latency_target(p: Planner) -> Target:
    """--latency-on: one of the build's targets (its artifacts are benchmarked there, which gives the
    achieved speed-up) that can time a table: not an emulator, not (yet) a phone."""
    c = p.config
    chosen = [t for t in p.targets if t.name == c.latency_on]
    if not chosen:
        raise UserInputError(f"--latency-on {c.latency_on}: not one of --targets ({', '.join(t.name for t in p.targets)}); "
                             f"add it there, so that the pruned artifact's speed-up is measured where it was asked")
    if isinstance(chosen[0], EmulatedTarget):
        raise UserInputError(f"--latency-on {c.latency_on}: an emulator's timing means nothing; name the host or a real device")
    if isinstance(chosen[0], AdbTarget):
        raise UserInputError(f"--latency-on {c.latency_on}: latency tables on adb devices are not supported yet; "
                             f"use the host or an ssh board")
    return chosen[0]


@rule
def sparsity(p: Planner, m: ModelPlan) -> None:
    """--prune magnitude: a variant `<model>-s<sparsity %>` with tfmot magnitude sparsity (docs/compression-tfmot.md)."""
    c = p.config
    if c.prune != "magnitude" or not _compressible(m, "--prune magnitude"):
        return
    config = SparsityConfig(sparsity=c.sparsity, epochs=c.sparsity_epochs, learning_rate=c.sparsity_learning_rate or c.prune_learning_rate,
                            scope=c.sparsity_scope, **p.fit_settings(m.prep))
    _compressed_variant(p, m, SparsityStage(), config, "sparsity", f"s{round(100 * c.sparsity)}",
                        {"method": "magnitude", "sparsity": c.sparsity})


@rule
def clustering(p: Planner, m: ModelPlan) -> None:
    """--cluster N: a variant `<model>-c<N>` with tfmot weight clustering (docs/compression-tfmot.md)."""
    c = p.config
    if not c.cluster or not _compressible(m, "--cluster"):
        return
    config = ClusteringConfig(clusters=c.cluster, epochs=c.cluster_epochs, learning_rate=c.cluster_learning_rate,
                              init=c.cluster_init, **p.fit_settings(m.prep))
    _compressed_variant(p, m, ClusteringStage(), config, "clustering", f"c{c.cluster}",
                        {"method": "clustering", "clusters": c.cluster})


def _compressed_variant(p: Planner, m: ModelPlan, stage, config, what: str, suffix: str, recipe: dict,
                        inputs: dict | None = None) -> None:
    """The stage that compresses m's float model (training: may take a GPU), and its variant `<model>-<suffix>`."""
    node = p.node(stage, config, {"model": m.model, "data": m.data, **(inputs or {})}, label=f"{m.name} {what}", fatal=True,
                  resources={"GPU": 1})
    p.variant(m, suffix, node, recipe)


def _compressible(m: ModelPlan, flag: str) -> bool:
    """A model compression applies to: a tf_keras model, not itself a variant."""
    if m.parent is not None:
        return False
    if m.onnx or (m.twin is not None and m.twin.status != "ok"):
        log.warning("%s: %s needs a tf_keras model; not compressed", m.source, flag)
        return False
    return True


def _method(m: ModelPlan) -> str | None:
    return (m.compression or {}).get("method")


# QAT that keeps what a tfmot variant made: its zeros, or its shared values.
QAT_SCHEMES = {"magnitude": "prune-preserve", "clustering": "cluster-preserve"}


@rule
def qat(p: Planner, m: ModelPlan) -> None:
    """QAT when int8-qat TFLite is wanted; where impossible, int8-ptq takes its place (or the build stops)."""
    c = p.config
    if "int8-qat" not in m.precisions or "tflite" not in c.formats:
        return
    reason = None
    if m.onnx:
        reason = "QAT needs a Keras model; ONNX input gets post-training quantization (int8-ptq)"
        log.warning("%s: %s", m.source, reason)
    elif m.twin is not None and m.twin.status != "ok":  # a Keras 3 model tfmot cannot take, and no twin
        reason = m.twin.reason
        if c.require_qat:
            raise UserInputError(f"{m.source}: {reason}; QAT is impossible and --require-qat is set")
        log.warning("%s: %s; falling back to post-training quantization (int8-ptq)", m.source, reason)
    if reason is not None:
        m.qat_status = schema.QatStatus(status="unsupported", reason=reason)
        m.precisions.remove("int8-qat")
        if "int8-ptq" not in m.precisions:
            m.precisions.append("int8-ptq")
        return
    # QAT fine-tunes toward the float model it starts from (--qat-teacher float); with --distill, a
    # variant's toward its parent, as its own fine-tuning did.
    distill = DistillConfig(temperature=c.distill_temperature, alpha=c.distill_alpha) \
        if c.distill or c.qat_teacher == "float" else None
    teacher = {"teacher": (m.teacher if c.distill else None) or m.model} if distill else {}
    settings = {**p.fit_settings(m.prep), "augment": qat_augment(c, m.source)}
    m.qat = p.node(QatStage(), QatConfig(epochs=c.qat_epochs, learning_rate=c.qat_learning_rate, patience=c.early_stopping_patience,
                                         freeze_bn_after=c.qat_freeze_bn_after, distill=distill, scheme=QAT_SCHEMES.get(_method(m), "default"),
                                         calibration_images=c.calibration_images, **settings),
                   {"model": m.model, "data": m.data, **teacher}, label=m.name, fatal=True, resources={"GPU": 1})

    def fallback_or_stop(out: StageOutput) -> None:
        if out.result["status"] == "ok":
            return
        reason = out.result["reason"]
        if c.require_qat:
            raise UserInputError(f"{m.source}: {reason}; QAT is impossible and --require-qat is set")
        log.warning("%s: %s; falling back to post-training quantization (int8-ptq)", m.source, reason)

    m.qat.checks.append(fallback_or_stop)


def qat_ok(result: dict) -> bool:
    return result["status"] == "ok"


@rule
def tflite(p: Planner, m: ModelPlan) -> None:
    """Keras -> TFLite, one conversion per precision."""
    c = p.config
    if "tflite" not in c.formats or m.onnx:
        return
    wanted = [(precision, None) for precision in m.precisions]
    made = {}
    if m.qat is not None and "int8-ptq" not in m.precisions:
        wanted.append(("int8-ptq", When(m.qat, lambda r: not qat_ok(r), "QAT impossible (int8-ptq replaces int8-qat)")))
    for precision, when in wanted:
        source = m.model
        if precision == "int8-qat":
            source, when = m.qat, When(m.qat, qat_ok, "QAT possible")
        is_int8 = precision in INT8_PRECISIONS
        converted = p.node(
            ConvertStage(),
            ConvertConfig(model_name=m.name, precision=precision, int8_io=is_int8 and c.io == "int8",
                          calibration_images=c.calibration_images, seed=c.seed, preprocessing=m.prep,
                          # only int8-ptq has a fallback: other precisions keep their keys when its flags change
                          **({"int8_fallback": c.int8_fallback, "int8_budget": c.int8_budget} if precision == "int8-ptq" else {}),
                          # a sparse variant's fp32 stores its zeros sparse, as XNNPACK's sparse path needs
                          sparse=precision == "fp32" and _method(m) == "magnitude"),
            {"model": source, "data": m.data}, label=f"{m.name} {precision}", when=when,
        )
        p.artifact(m, "tflite", precision, converted)
        made[precision] = converted
    if m.qat is not None and {"int8-qat", "int8-ptq"} <= set(m.precisions):
        # Never ship a QAT that lost to PTQ: the two compared on images neither saw (stages/qat_check.py).
        m.qat_check = p.node(QatCheckStage(), QatCheckConfig(preprocessing=m.prep, calibration_images=c.calibration_images, seed=c.seed),
                             {"qat": made["int8-qat"], "ptq": made["int8-ptq"], "model": m.model, "data": m.data},
                             label=m.name, when=When(m.qat, qat_ok, "QAT possible"))


@rule
def coreml(p: Planner, m: ModelPlan) -> None:
    """The float model as Core ML for the iOS app, published beside the TFLite artifacts."""
    if p.config.coreml and not m.onnx:
        m.published.append(p.node(CoreMLStage(), CoreMLConfig(model_name=m.name, preprocessing=m.prep),
                                  {"model": m.model, "data": m.data}, label=m.name, fatal=True))


def onnx_source(p: Planner, m: ModelPlan) -> Node:
    """The model as ONNX (exported from Keras, or the user's ONNX checked): shared by three rules."""
    return p.node(OnnxExportStage(), OnnxExportConfig(model_name=m.name, preprocessing=m.prep),
                  {"model": m.model, "data": m.data}, label=m.name)


@rule
def onnx_tflite(p: Planner, m: ModelPlan) -> None:
    """ONNX input -> TFLite through onnx2tf: one SavedModel, then one artifact per precision."""
    c = p.config
    if "tflite" not in c.formats or not m.onnx:
        return
    precisions = [x for x in m.precisions if x in ONNX_TFLITE_PRECISIONS]
    onnx_node = onnx_source(p, m)
    converted = p.node(
        Onnx2TfStage(),
        Onnx2TfConfig(preprocessing=m.prep, quantize=any(x in ("dynamic-int8", "int8-ptq") for x in precisions),
                      calibration_images=c.calibration_images, seed=c.seed),
        {"onnx": onnx_node, "data": m.data}, label=m.name,
    )
    for precision in precisions:
        artifact = p.node(OnnxTfliteStage(), OnnxTfliteConfig(model_name=m.name, precision=precision, preprocessing=m.prep),
                          {"onnx2tf": converted, "onnx": onnx_node, "data": m.data}, label=f"{m.name} {precision}")
        p.artifact(m, "tflite", precision, artifact)


@rule
def onnx(p: Planner, m: ModelPlan) -> None:
    if "onnx" in p.config.formats:
        p.artifact(m, "onnx", "fp32", onnx_source(p, m))


@rule
def ncnn(p: Planner, m: ModelPlan) -> None:
    """ONNX -> ncnn with pnnx, per ncnn precision (int8 calibrated in Python)."""
    c = p.config
    if "ncnn" not in c.formats:
        return
    onnx_node = onnx_source(p, m)
    for precision in c.ncnn_precisions:
        int8 = precision == "int8"
        converted = p.node(
            NcnnConvertStage(),
            NcnnConvertConfig(
                model_name=m.name, precision=precision, preprocessing=m.prep,
                calibration_images=c.calibration_images if int8 else 0, seed=c.seed,
                calibration_method=c.ncnn_calibration if int8 else "none",
                percentile=c.ncnn_percentile if int8 and c.ncnn_calibration in ("percentile", "auto") else 0,
                float_layers=c.ncnn_float_layers if int8 else [],
                int8_fallback=c.int8_fallback if int8 else "off", int8_budget=c.int8_budget if int8 else 0,
            ),
            {"onnx": onnx_node, "data": m.data}, label=f"{m.name} ncnn {precision}",
        )
        p.artifact(m, "ncnn", precision, converted)


@rule
def mnn(p: Planner, m: ModelPlan) -> None:
    """ONNX -> MNN with MNN's converter, per MNN precision (int8 calibrated by mnnquant)."""
    c = p.config
    if "mnn" not in c.formats:
        return
    onnx_node = onnx_source(p, m)
    for precision in c.mnn_precisions:
        int8 = precision == "int8"
        converted = p.node(
            MnnConvertStage(),
            MnnConvertConfig(model_name=m.name, precision=precision, preprocessing=m.prep,
                             calibration_images=c.calibration_images if int8 else 0, seed=c.seed,
                             calibration_method=c.mnn_calibration if int8 else "none"),
            {"onnx": onnx_node, "data": m.data}, label=f"{m.name} mnn {precision}",
        )
        p.artifact(m, "mnn", precision, converted)


@rule
def on_arm_kernels(p: Planner, m: ModelPlan) -> None:
    """Every artifact's accuracy computed by each emulated target's and ssh board's own kernels
    (verify_target.py). Untimed: on an emulator it runs beside other work; on a board it holds the
    board's lease, as its benchmarks do. --arm-val-images 0 turns it off."""
    c = p.config
    if c.arm_val_images <= 0:
        return
    for a in m.artifacts:
        for target in p.targets:
            if not isinstance(target, EmulatedTarget | SshTarget) or not runs_format(target, a.format):
                continue
            board = isinstance(target, SshTarget)
            node = p.node(
                VerifyTargetStage(),
                VerifyTargetConfig(target=target.name, target_identity=p.target_identity(target), ssh=p.ssh_options() if board else None,
                                   images=c.arm_val_images, fp16=runs_fp16(a.format, a.precision), **_sample(c)),
                {"artifact": a.converted, "data": m.data, "reference": m.reference},
                label=f"{a.model} {a.format} {a.precision} {target.name}",
                **(on_device(target) if board else {}),
            )
            a.target_verifies.append((target, node))


@rule
def pruned_speedup(p: Planner, m: ModelPlan) -> None:
    """Each --prune-speedup variant's achieved speed-up: its int8 TFLite artifact and its parent's timed
    together on --latency-on (the variant's own rules ran inside prune, before the parent's tflite)."""
    c = p.config
    for v in m.variants:
        if not (v.compression or {}).get("speedup"):
            continue
        for precision in ("int8-ptq", "int8-qat"):
            pair = [next((a for a in plan.artifacts if a.format == "tflite" and a.precision == precision), None) for plan in (m, v)]
            if all(pair):
                break
        else:
            continue  # the build makes no int8 TFLite artifact of both (rule prune warned)
        target = _latency_target(p)
        v.speedup = p.node(
            SpeedupStage(),
            SpeedupConfig(target=target.name, target_identity=p.target_identity(target), threads=c.latency_threads, warmup=c.warmup,
                          runs=c.runs, ssh=p.ssh_options() if isinstance(target, SshTarget) else None),
            {"unpruned": pair[0].converted, "pruned": pair[1].converted}, label=f"{v.name} {precision} on {target.name}",
            **timed_on(target))


@rule
def op_profiles(p: Planner, m: ModelPlan) -> None:
    """--profile-ops: each TFLite artifact's ops timed alone on every real target it is benchmarked on
    (the host, ssh boards; not emulators, whose timing means nothing, nor phones, which have no
    runner for many models yet), at the first thread count benchmarked."""
    c = p.config
    if not c.profile_ops:
        return
    for a in m.artifacts:
        if a.format != "tflite":
            continue
        for target in dict.fromkeys(t for t, _ in a.benches):
            if isinstance(target, HostTarget | SshTarget):
                node = p.node(
                    ProfileStage(),
                    ProfileConfig(target=target.name, target_identity=p.target_identity(target), threads=p.threads[0], warmup=c.warmup,
                                  runs=c.runs, ssh=p.ssh_options() if isinstance(target, SshTarget) else None),
                    {"artifact": a.converted}, label=f"{a.model} {a.format} {a.precision} ops on {target.name}",
                    **timed_on(target))
                a.profiles.append((target, p.threads[0], node))
