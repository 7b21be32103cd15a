"""report.json, as typed models. The JSON Schema in docs/report.schema.json is generated from these.

Change SCHEMA_VERSION when a field is renamed or removed (major) or added (minor).
Accuracies are fractions in [0, 1]; accuracy drops and gates are in percentage points.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = "1.12"  # 1.1 to 1.12 only added fields with defaults or made fields optional: 1.0 reports still load


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Latency(_Strict):
    p50: float
    p90: float
    p99: float
    mean: float
    std: float
    n: int = Field(description="number of timed runs after warm-up")
    p25: float | None = Field(default=None, description="1.10: first quartile (null when the tool does not say); "
                                                        "p25-p75 is the spread the recommendation's ties use")
    p75: float | None = Field(default=None, description="1.10: third quartile (null when the tool does not say)")

    @property
    def spread(self) -> tuple[float, float]:
        """p25-p75; a record without quartiles: its p50 alone."""
        return (self.p50 if self.p25 is None else self.p25, self.p50 if self.p75 is None else self.p75)

    def overlaps(self, other: "Latency") -> bool:
        """Whether the two spreads overlap."""
        (low, high), (other_low, other_high) = self.spread, other.spread
        return low <= other_high and other_low <= high


class OutputDiff(_Strict):
    max_abs: float = Field(description="largest absolute difference between this target's outputs (after the softmax, for a "
                                       "model ending in one) and the host's, same inputs; near 0 on a confident model whatever "
                                       "the kernels do: read the logits fields")
    max_lsb: int | None = Field(default=None, description="int8 outputs: the same difference in quantization steps")
    host_delegate: str | None = Field(
        default=None, description="TFLite: the delegate the host ran with for the comparison, the target's own ('xnnpack' "
                                  "or 'none': built-in kernels), so kernels are compared like for like")
    # 1.3: the logits comparison (pipeline/targets/output_check.py)
    compared: Literal["logits", "outputs"] | None = Field(
        default=None, description="what the logits_* fields compare: 'logits' (the tensor feeding the final softmax) or "
                                  "'outputs' (the model has no final softmax); null in reports before 1.3")
    inputs: Literal["validation", "random"] | None = Field(
        default=None, description="'validation': a seeded subset of the validation images, preprocessed as the artifact "
                                  "expects; 'random': one uniform random input (deploy bench on a file, no data)")
    n: int | None = Field(default=None, description="number of images compared")
    logits_max_abs: float | None = Field(default=None, description="largest |target logit - host logit| over the images (dequantized units)")
    logits_max_rel: float | None = Field(
        default=None, description="largest, over the images, of max |target - host| / max |host logit| on that image")
    logits_max_steps: int | None = Field(default=None, description="int8 logits: the largest difference in quantization steps")
    top1_agreement: float | None = Field(default=None, description="fraction of the images where target and host pick the same class")
    target_top1: float | None = Field(default=None, description="validation inputs: top-1 on these images computed by the target's kernels")
    host_top1: float | None = Field(default=None, description="validation inputs: top-1 on the same images on the host")


class OpTime(_Strict):
    index: int = Field(description="the op's place in the artifact's execution order")
    op: str = Field(description="the TFLite op (CONV_2D, DEPTHWISE_CONV_2D, ADD, ...)")
    layer: str = Field(description="the layer it came from, read from its output tensor's name (else the op, lower case)")
    ms: float = Field(description="the op alone, with its own weights and quantization: median of the rounds' medians")


class OpProfile(_Strict):
    """1.12, --profile-ops: where a TFLite artifact's time goes on a real target (pipeline/targets/op_profile.py)."""

    rounds: int = Field(description="interleaved rounds, each op and the whole artifact timed once per round in one process")
    whole_ms: float = Field(description="the whole artifact, timed beside its ops: the ops' sum differs by the invoke cost each "
                                        "op alone pays again and what the whole model keeps in cache")
    ops: list[OpTime] = Field(description="every op but the DEQUANTIZEs of constant weights (timed with the op that reads them)")


class Benchmark(_Strict):
    target: str = Field(description="host, arm64-emu, armv7-emu, ssh:USER@HOST:PORT, adb:SERIAL, android-app (pipeline/targets/spec.py)")
    runtime: str
    runtime_version: str
    delegate: str = Field(description="'xnnpack' when LiteRT confirmed it applied the delegate, else 'none'")
    threads: int
    warmup: int
    latency_ms: Latency
    init_ms: float | None = Field(description="interpreter creation + tensor allocation; null when the tool does not say (benchncnn)")
    peak_rss_mb: float | None = Field(description="peak resident memory of the benchmark process (benchmark_model: its memory "
                                                  "footprint); null when the tool does not say (benchncnn)")
    cpu: str = Field(description="CPU model (machine, cores[, board: the device tree's model on ARM boards])")
    emulated: bool = Field(default=False, description="timed under emulation: the user-mode emulators, and boards whose "
                                                      "device tree says QEMU's virt machine (linux,dummy-virt)")
    partial: bool = Field(default=False, description="the device went away mid-run: fewer timed runs than asked (latency_ms.n)")
    options: dict[str, bool | int | str] = Field(
        default_factory=dict, description="runtime options used: ncnn fp16/packing/int8 flags and CPU support, onnxruntime provider")
    output_diff: OutputDiff | None = Field(
        default=None, description="emulated and device targets: outputs compared with the host's on the same inputs")
    # 1.4
    isolation: str | None = Field(
        default=None, description="what shared the machine or device while this ran (the plan's lease): 'alone: ...' for host "
                                  "and emulator benchmarks, one at a time per device for phones and boards; null before 1.4")
    arithmetic: Literal["fp16", "fp32"] | None = Field(
        default=None, description="1.4, fp16 artifacts: the arithmetic the target computed them in ('fp16' on ARMv8.2 "
                                  "FP16 cores through XNNPACK or ncnn; 'fp32' where the CPU has none, e.g. x86: fp16 "
                                  "weights widened to fp32); null for other artifacts")
    op_profile: OpProfile | None = Field(
        default=None, description="1.12, --profile-ops: each op timed alone on this target at these threads (TFLite; host and ssh boards)")


class Accuracy(_Strict):
    top1: float = Field(description="fraction of validation images classified correctly")
    agreement: float = Field(description="fraction of validation images where the top-1 class equals the float model's")
    n: int
    max_abs_diff: float | None = Field(
        default=None, description="largest |output - float model output| over the validation images (the model's own outputs: softmax or logits)")


class TargetAccuracy(_Strict):
    """1.4: accuracy computed by a target's own kernels (pipeline/stages/verify_target.py)."""
    target: str = Field(description="the emulated target (arm64-emu, armv7-emu) or ssh board (ssh:USER@HOST:PORT)")
    runtime: str = Field(description="runtime and version on the target")
    delegate: str = Field(description="TFLite: 'xnnpack' or 'none' (built-in kernels); ncnn: 'none'")
    n: int = Field(description="validation images run (a seeded sample of at most --arm-val-images)")
    top1: float = Field(description="top-1 on these images computed by the target's kernels")
    host_top1: float = Field(description="top-1 of the same artifact on the same images on the host")
    host_agreement: float = Field(description="fraction of the images where target and host pick the same class")
    float_agreement: float = Field(description="fraction of the images where the target picks the float model's class")
    logits_max_abs: float | None = Field(default=None, description="largest |target logit - host logit| over the images")
    arithmetic: Literal["fp16", "fp32"] | None = Field(default=None, description="fp16 artifacts: the arithmetic the target used")
    flagged: bool = Field(default=False, description="top-1 on the target more than 1 point below the host's on the same "
                                                     "images: not recommended for this target")


class Int8Check(_Strict):
    fully_int8: bool
    float_ops: list[str] = Field(description="ops computing in float, besides quantize/dequantize at float I/O")


class LayerError(_Strict):
    """1.4: one quantized layer's own int8 error on held-out training images (docs/int8.md)."""
    layer: str = Field(description="the layer's output tensor (TFLite: as the converter names it, the name the deny list takes; ncnn: the layer name)")
    op: str = Field(description="its op: CONV_2D, DEPTHWISE_CONV_2D, ... (TFLite), Convolution, InnerProduct, ... (ncnn)")
    nrmse: float = Field(description="RMSE of the int8 output against float, in units of the output's int8 step (rmse / scale): "
                                     "about 0.3 is rounding alone; far above 1, int8 breaks the layer")
    max_abs: float = Field(description="largest |int8 - float| of the layer's output (dequantized units)")
    cosine: float | None = Field(default=None, description="mean cosine similarity of the int8 and float outputs; null when not measured")


class FallbackRound(_Strict):
    float_layers: list[str] = Field(description="layers kept in float in this round ([]: the plain int8 conversion)")
    top1: float = Field(description="top-1 (share) on the labelled decision images")
    agreement: float | None = Field(default=None, description="1.7: share of the decision images on which this round's "
                                                                "top-1 class is the float model's")
    size_bytes: int


class Int8Fallback(_Strict):
    """1.4: the automatic float fallback's decision for one int8 artifact (--int8-fallback, --int8-budget).
    1.7: it decides on agreement with the float model over the decision images (a few hundred training
    images calibration did not use; never the validation split), and on label top-1 over the never-fitted
    ones among them when there are at least 100 (docs/int8.md, "What the fallback decides on")."""
    budget_points: float = Field(description="percent of the decision images int8 may disagree on, and points of top-1 "
                                             "it may lose on the labelled ones")
    status: Literal["not-needed", "met", "cap-reached", "no-broken-layer", "off"]
    float_layers: list[str] = Field(description="layers the shipped artifact keeps in float, worst first")
    decision_images: int | None = Field(default=None, description="1.7: images the agreement was measured on")
    agreement_int8: float | None = Field(default=None, description="1.7: share of the decision images on which the plain "
                                                                   "int8 conversion's top-1 class is the float model's")
    agreement_after: float | None = Field(default=None, description="1.7: the same for the shipped artifact")
    top1_decides: bool | None = Field(default=None, description="1.7: label top-1 counted in the decision (100+ labelled images)")
    top1_int8: float = Field(description="the plain int8 conversion's top-1 (share) on the labelled decision images: the "
                                         "never-fitted ones (early stopping's hold-out), or all of them when none is")
    top1_float: float = Field(description="the float model's top-1 on the same images")
    top1_after: float = Field(description="the shipped artifact's top-1 on the same images")
    n: int | None = Field(default=None, description="number of labelled images the top-1 figures are on")
    rounds: list[FallbackRound] = Field(description="the plain conversion first, then one round per float layer added")


class LatencyTableSummary(_Strict):
    """1.11: the per-layer latency table --prune-speedup chose with (pipeline/compress/layer_latency.py)."""

    target: str = Field(description="the target it was measured on (--latency-on)")
    identity: dict = Field(description="what the target reported: cpu (machine, model, count, board), runtime, delegates")
    threads: int
    entries: int = Field(description="one-layer models and whole models the table holds")
    timed: int = Field(description="of them, timed by this build (the rest came from the latency cache)")
    reused: int
    unpruned_ms: float = Field(description="the unpruned int8 model, timed beside the one-layer models (median of rounds)")
    half_ms: float = Field(description="the model with every group pruned at 0.5, the same way")
    spread: float = Field(description="(max - min) / median of the unpruned model's rounds: how stable the target was")
    entry_spread_median: float = Field(description="the same, the median over every entry of the table")
    cache_file: str = Field(description="the latency cache file the entries are kept in (DEPLOY_LATENCY_CACHE)")
    predicted_unpruned_ms: float = Field(description="the table's prediction for the unpruned model")
    rest_ms: float = Field(description="of it, what is not conv/depthwise/dense (additions, pooling, shuffles, call cost)")
    layers_ms: dict[str, float] = Field(description="each conv/depthwise/dense layer's time in the unpruned model, ms: where the time goes")
    pruned_layers_ms: dict[str, float] | None = Field(
        default=None, description="1.12: the same layers' times in the chosen pruning, by the table (what pruning took where)")


class SpeedupCheck(_Strict):
    """1.11: a candidate pruning the chooser timed on the target (stages/prune_choice.py)."""

    step: int = Field(description="the candidate's step on the greedy walk (1: one group one ratio further)")
    predicted: float = Field(description="the speed-up the table predicted for the candidate")
    measured: float = Field(description="the speed-up measured: unpruned / candidate int8 time, median of alternating rounds")
    macs_kept: float


class Compression(_Strict):
    """How a model variant was made smaller (issue 12; docs/compression.md)."""

    method: str = Field(description="'l1-filter' (structured filter pruning), or 'none' for a model that is not a variant")
    keep_macs: float | None = Field(default=None, description="--prune-keep-macs: the share of the MACs asked to keep")
    speedup: float | None = Field(default=None, description="1.11: --prune-speedup, the speed-up asked on latency_on")
    ratios_from: str | None = Field(default=None, description="1.11: --prune-ratios-from, the report.json the group ratios came from")
    latency_on: str | None = Field(default=None, description="1.11: --latency-on, the target the speed-up was asked on")
    predicted_speedup: float | None = Field(default=None, description="1.11: the speed-up the latency table predicted for the chosen ratios")
    achieved_speedup: float | None = Field(
        default=None, description="1.11: measured by this build: the unpruned model's int8 TFLite artifact's time / the "
                                  "variant's (int8-ptq, else int8-qat), timed together in 7 alternating rounds on latency_on at "
                                  "the table's thread count (stage speedup); on the model, not its artifacts")
    speedup_checks: list[SpeedupCheck] | None = Field(
        default=None, description="1.11: each candidate pruning timed against the unpruned model on latency_on while choosing")
    latency_table: LatencyTableSummary | None = None
    macs_kept: float | None = Field(default=None, description="the share of the unpruned model's MACs the variant has")
    distilled: bool = Field(default=False, description="fine-tuned against the float model's soft targets (--distill)")
    distill_temperature: float | None = None
    distill_alpha: float | None = None
    qat_distilled: bool | None = Field(default=None, description="on an int8-qat artifact: its QAT fine-tuning was distilled")
    sparsity: float | None = Field(default=None, description="--prune magnitude: share of the pruned kernels' weights set to zero")
    clusters: int | None = Field(default=None, description="--cluster: shared values per clustered kernel")
    group_ratios: dict[str, float] | None = Field(default=None, description="share of filters removed per channel group "
                                                                             "(groups named by their first producer layer)")
    # 1.5: what the variant's stage measured on the model it made (sparsity and clustering)
    zeros_in_pruned_kernels: float | None = Field(default=None, description="--prune magnitude: measured share of zero weights "
                                                                            "in the kernels tfmot pruned")
    zeros_in_all_kernels: float | None = Field(default=None, description="--prune magnitude: measured share of zero weights in every kernel")
    max_distinct_values: int | None = Field(default=None, description="--cluster: most distinct values in any clustered kernel")
    gzip_bytes: dict[str, dict[str, int]] | None = Field(
        default=None, description="gzip-compressed size of the .tflite (fp32 and dynamic-int8) of the model before ('dense') "
                                  "and after ('compressed') sparsity or clustering, as tfmot reports compression")


class SensitivityPoint(_Strict):
    ratio: float
    units_removed: int
    top1: float
    macs_kept: float


class SensitivityCurve(_Strict):
    group: str
    producers: list[str]
    units: int
    points: list[SensitivityPoint]


class PruningSensitivity(_Strict):
    baseline_top1: float
    images: int
    measured_on: str
    groups: list[SensitivityCurve]
    top1_pruned_before_fine_tuning: float
    top1_after_fine_tuning: float


class Artifact(_Strict):
    id: str
    model: str
    format: Literal["tflite", "ncnn", "onnx", "mnn"]
    precision: Literal["fp32", "fp16", "dynamic-int8", "int8-ptq", "int8-qat", "int8"]
    path: str = Field(description="relative to the run folder")
    metadata_path: str = Field(description="labels, preprocessing and recipe, beside the artifact")
    size_bytes: int
    io: dict[str, str] = Field(description="dtype of the input and output tensors")
    calibration_images: int
    accuracy: Accuracy
    accuracy_drop_points: float = Field(description="float reference top-1 minus this artifact's, in points")
    int8_check: Int8Check | None = None
    benchmarks: list[Benchmark] = []
    # 1.4: per-layer int8 error and the float fallback (docs/int8.md)
    layer_errors: list[LayerError] | None = Field(default=None, description="int8 artifacts: every quantized layer's error, worst first")
    layer_errors_note: str | None = Field(default=None, description="int8 artifacts without layer_errors: why")
    fallback: Int8Fallback | None = Field(default=None, description="int8 artifacts: what the float fallback kept in float and what it cost")
    target_accuracy: list[TargetAccuracy] = Field(
        default_factory=list, description="1.4: per emulated target and ssh board, accuracy computed by its own kernels (--arm-val-images)")
    compression: Compression | None = Field(default=None, description="the recipe of a compressed variant's artifact, "
                                                                      "or of a distilled QAT")


class QatFigures(_Strict):
    top1: float = Field(description="top-1 on the labels of the held-out training images")
    agreement: float = Field(description="share of those images where its top-1 is the float model's")


class QatVersusPtq(_Strict):
    """int8-qat against int8-ptq (1.6), in LiteRT on training images neither calibration nor
    training used; never the validation split the artifacts are scored on."""
    images: int
    qat: QatFigures | None = None
    ptq: QatFigures | None = None
    worse: bool = Field(description="QAT lost (lower top-1, or equal top-1 and lower agreement): int8-qat is not recommended")
    note: str | None = None


class QatStatus(_Strict):
    status: Literal["ok", "unsupported", "not-requested"]
    reason: str | None = None
    versus_ptq: QatVersusPtq | None = None


class ProbeCandidate(_Strict):
    name: str = Field(description="input convention, e.g. '[0,1] RGB'")
    preprocessing: dict = Field(description="what the user's model is fed under this convention")
    top1: float = Field(description="float model's top-1 on the validation split under it")


class PreprocessingProbe(_Strict):
    chosen: str = Field(description="the convention the build used (the best), or 'given' when flags set it")
    candidates: list[ProbeCandidate]


class KerasTwin(_Strict):
    status: Literal["ok", "unsupported"]
    reason: str | None = None
    max_abs_diff: float | None = Field(default=None, description="max |model - twin| over the validation images")
    removed: list[str] = Field(default_factory=list, description="augmentation layers dropped (inactive at inference)")
    folded: list[str] = Field(default_factory=list, description="input preprocessing layers folded into the preprocessing")


class Pretrained(_Strict):
    """1.7: a built-in model started from other weights (--pretrained; docs/training.md)."""
    weights: str = Field(description="'imagenet' (keras.applications' weights) or the model file given")
    layers_copied: int = Field(description="layers whose weights were taken: every weighted layer but the head")
    head_epochs: int = Field(description="epochs training the new head alone, the backbone frozen")
    fine_tune_epochs: int = Field(description="epochs fine-tuning every layer but batch normalization")
    fine_tune_learning_rate: float


class Training(_Strict):
    """1.8: how a built-in model was trained here (docs/training.md)."""
    epochs: int
    epochs_run: int
    learning_rate: float
    augment: str
    early_stopping: str = Field(description="'stopped' or 'ran every epoch' (the best held-out epoch kept), or 'off'")
    early_stopping_note: str | None = Field(default=None, description="why it was off (a hold-out too small to decide on)")
    held_out_images: int | None = Field(default=None, description="training images early stopping held out and decided on")
    best_epoch: int | None = None

    @classmethod
    def from_result(cls, result: dict, learning_rate: float, epochs: int) -> "Training":
        """From the train stage's result and config."""
        stopping = result["early_stopping"]
        return cls(epochs=epochs, epochs_run=len(result["history"]), learning_rate=learning_rate, augment=result["augment"],
                   early_stopping=stopping["status"], early_stopping_note=stopping.get("reason"),
                   held_out_images=stopping.get("held_out_images"), best_epoch=stopping.get("best_epoch"))

    def sentence(self) -> str:
        early = (f"early stopping on {self.held_out_images} held-out images kept epoch {self.best_epoch} of {self.epochs_run}"
                 if self.early_stopping != "off" else f"no early stopping ({self.early_stopping_note or 'off'})")
        return f"{self.epochs} epochs, learning rate {self.learning_rate:g}, augment {self.augment}; {early}"


class ModelInfo(_Strict):
    name: str
    source: str = Field(description="built-in architecture name or the model file given")
    input_shape: list[int]
    num_classes: int
    labels: list[str]
    params: int
    macs: int = Field(description="multiply-accumulates for one image")
    float_accuracy: Accuracy
    qat: QatStatus
    preprocessing: dict
    reference_runtime: str = Field(
        default="tf-keras", description="where float_accuracy and every artifact's agreement come from: tf-keras or onnxruntime (ONNX input)")
    preprocessing_probe: PreprocessingProbe | None = Field(
        default=None, description="top-1 of the float model under each common input convention (models given without preprocessing flags)")
    keras_twin: KerasTwin | None = Field(
        default=None, description="the tf_keras twin of a Keras 3 model (or of one with preprocessing layers), proven equal before use")
    parent: str | None = Field(default=None, description="a compressed variant: the model it was made from (its name starts with it)")
    compression: Compression | None = Field(default=None, description="a compressed variant: how it was made")
    pruning_sensitivity: PruningSensitivity | None = Field(
        default=None, description="filter pruning: top-1 with each channel group pruned alone, before fine-tuning")
    pretrained: Pretrained | None = Field(default=None, description="1.7: where a built-in model's starting weights came from")
    training: Training | None = Field(default=None, description="1.8: a built-in model trained here: its recipe and early stopping")


class DataInfo(_Strict):
    source: str
    train: int
    val: int
    skipped: dict[str, int]
    val_used: int | None = Field(default=None, description="validation images every accuracy figure used: all `val`, or a "
                                                            "seeded sample of --val-max-images")
    augment: str | None = Field(default=None, description="training augmentation of built-in training and QAT: none, basic or affine")


class GateFailure(_Strict):
    artifact: str
    reason: str


class QualityGate(_Strict):
    max_accuracy_drop_points: float | None
    failures: list[GateFailure]


class ArtifactFailure(_Strict):
    model: str
    format: str
    precision: str
    error: str = Field(description="one line: the converter or runtime, what failed, its last stderr lines")
    target: str | None = Field(default=None, description="set when only the benchmark on this target failed: the artifact "
                                                         "is still in `artifacts` with its other targets' benchmarks")


class Constraints(_Strict):
    max_accuracy_drop: float | None = Field(default=None, description="points of top-1 below the float model")
    max_size_mb: float | None = Field(default=None, description="artifact file size, 1 MB = 10^6 bytes")
    max_latency_ms: float | None = Field(
        default=None, description="p50 at the fewest threads measured on the target (1 by default); not applied on emulated targets")


class Recommendation(_Strict):
    target: str
    model: str
    artifact: str | None = Field(description="id of the artifact to ship on this target, or null when none meets the constraints")
    reason: str
    constraints: Constraints


class Report(_Strict):
    schema_version: Literal["1.0", "1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "1.7", "1.8", "1.9", "1.10", "1.11", "1.12"] = SCHEMA_VERSION
    created: str
    command: str
    tools: dict[str, str]
    data: DataInfo
    models: list[ModelInfo]
    artifacts: list[Artifact]
    quality_gate: QualityGate
    failures: list[ArtifactFailure] = Field(default_factory=list, description="artifacts that could not be built (the others still were), and benchmarks that failed on a target (`target` set)")
    recommendations: list[Recommendation] = Field(
        default=[], description="per target, then per model (target 'host' first): what to ship under the constraints")
