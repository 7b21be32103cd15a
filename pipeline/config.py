"""The build configuration: typed, validated, from a YAML file plus flag overrides."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from pipeline.errors import UserInputError

Precision = Literal["fp32", "fp16", "dynamic-int8", "int8-ptq", "int8-qat"]
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "dynamic-int8", "int8-ptq", "int8-qat")
INT8_PRECISIONS = ("int8-ptq", "int8-qat")
BUILTIN_MODELS = ("mobilenet_v1", "mobilenet_v2", "shufflenet_v2", "squeezenet")
FORMATS = ("tflite", "ncnn", "onnx")
NCNN_PRECISIONS = ("fp32", "fp16", "int8")
MNN_PRECISIONS = ("fp32", "fp16", "int8")

# The demo digits are 8x8 pixels: 32x32 is the smallest size every built-in
# architecture accepts, and anything larger only adds compute.
DEMO_INPUT_SIZE = 32
DEFAULT_INPUT_SIZE = 224

# Keys whose flag name is not the key with dashes: the unit is in the key, the flag stays short.
FLAG_NAMES = {"max_size_mb": "--max-size", "max_latency_ms": "--max-latency"}


class BuildConfig(BaseModel):
    """Everything `deploy build` needs; field names are the YAML keys and the flag names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: list[str] = Field(default_factory=lambda: ["mobilenet_v2"], min_length=1)
    data: str = "demo"
    out: Path = Path("build")

    # Model shape. None: the user's model's own input size, else DEMO_INPUT_SIZE on the
    # demo data and DEFAULT_INPUT_SIZE on an image folder.
    input_size: int | None = Field(default=None, ge=16, le=1024)
    alpha: float | None = Field(default=None, gt=0)

    # Preprocessing, recorded with every artifact: x = (pixel[0..255] - mean) / std; one value
    # per channel (3, or 1 for a grayscale model; 1 value on a 3-channel model applies to all).
    # A user model given without any of these three has its preprocessing measured (probe).
    mean: list[float] = Field(default_factory=lambda: [127.5, 127.5, 127.5], min_length=1, max_length=3)
    std: list[float] = Field(default_factory=lambda: [127.5, 127.5, 127.5], min_length=1, max_length=3)
    channel_order: Literal["RGB", "BGR"] = "RGB"
    val_fraction: float = Field(default=0.2, gt=0, lt=1)
    seed: int = 0

    # Float training (built-in architectures only) and quantization-aware fine-tuning.
    epochs: int = Field(default=30, ge=1)
    batch_size: int = Field(default=64, ge=1)
    learning_rate: float = Field(default=1e-2, gt=0)  # measured: docs/training.md#the-recipe
    qat_epochs: int = Field(default=3, ge=1)
    qat_learning_rate: float = Field(default=1e-4, gt=0)
    # QAT epochs after which batch-norm statistics are frozen (training.freeze_batchnorm_after); 0: never,
    # the default: measured on the demo digits, it cost ShuffleNet V2's int8-qat 1.39 points (docs/int8.md).
    qat_freeze_bn_after: int = Field(default=0, ge=0)
    # What QAT fine-tunes toward: "float", the float model's soft outputs with the labels weighted in
    # (distillation, --distill-temperature/--distill-alpha): QAT keeps the float model's behaviour
    # under int8 arithmetic; "labels": the labels alone (docs/int8.md).
    qat_teacher: Literal["float", "labels"] = "float"
    # Training-time augmentation of the training split (pipeline/augment.py), float training and QAT.
    # None: "affine" (small shifts, turns, scaling): measured on the digits and two kinds of photo
    # sets, where "basic"'s crops and flips won only on the set cut as crops (docs/training.md).
    augment: Literal["none", "basic", "affine"] | None = None
    # Validation images every accuracy figure uses: a seeded sample of at most this many (0: all).
    val_max_images: int = Field(default=2000, ge=0)
    require_qat: bool = False
    # Early stopping for training and QAT: stop once the accuracy on 10 % of the training images
    # held out has not improved for this many epochs, keeping the best epoch (0: run every epoch).
    early_stopping_patience: int = Field(default=5, ge=0)
    # TensorFlow threads for training and QAT (None: every core for inputs of 128x128 and more, else 1;
    # rules.LARGE_INPUT_PIXELS). In their cache key: the weights depend on it, whichever executor or
    # --jobs runs them (docs/scale-out.md).
    train_threads: int | None = Field(default=None, ge=1)

    # Compression (docs/compression.md): --prune l1-filter adds a pruned variant of each built-in or
    # Keras model, with this share of its MACs at most, fine-tuned for prune_epochs; --distill makes
    # the pruned fine-tuning and QAT learn from the float model's soft targets at T, weight alpha.
    prune: Literal["none", "l1-filter", "magnitude"] = "none"
    prune_keep_macs: float = Field(default=0.5, gt=0, lt=1)
    # Or a speed-up over the unpruned int8 model on a device: the chooser reads a latency table
    # measured there (one-layer int8 TFLite models, XNNPACK, latency_threads), not the MAC count.
    prune_speedup: float | None = Field(default=None, gt=1)
    latency_on: str = "host"  # one of --targets, not emulated
    # Or no choice at all: the group ratios of this model's pruned variant in another build's report.json
    # (e.g. chosen for a speed-up at the deployment size, applied to a build at another size).
    prune_ratios_from: Path | None = None
    latency_threads: int = Field(default=1, ge=1)
    prune_epochs: int = Field(default=10, ge=1)
    # The pruned (and sparse) variants' fine-tuning rate: the old training rate, at which they were
    # measured (docs/compression.md, compression-tfmot.md); training from scratch now uses 1e-2.
    prune_learning_rate: float = Field(default=2e-3, gt=0)
    distill: bool = False
    distill_temperature: float = Field(default=4.0, gt=0)
    distill_alpha: float = Field(default=0.7, ge=0, le=1)

    # Compression with tensorflow-model-optimization (docs/compression-tfmot.md): each makes a
    # variant model fine-tuned from the float one, then QAT with the scheme that keeps it.
    # --prune magnitude: zero this share of the pruned weights (1x1 convolutions, XNNPACK's
    # sparse path; "all": every Conv2D/Dense kernel). --cluster N: N shared values per kernel; 0: off.
    sparsity: float = Field(default=0.8, gt=0, lt=1)
    sparsity_scope: Literal["pointwise", "all"] = "pointwise"
    # Fine-tuning while sparsity rises: at least sparsity_epochs and at least
    # compress.sparsity.MIN_STEPS optimizer steps (small data sets get more epochs); learning rate
    # None: prune_learning_rate (docs/compression-tfmot.md: what 5e-4 for 5 epochs lost).
    sparsity_epochs: int = Field(default=5, ge=1)
    sparsity_learning_rate: float | None = Field(default=None, gt=0)
    cluster: int = Field(default=0, ge=0)
    cluster_init: Literal["kmeans++", "linear"] = "kmeans++"
    cluster_epochs: int = Field(default=3, ge=1)
    cluster_learning_rate: float = Field(default=1e-4, gt=0)

    # Conversion.
    precisions: list[Precision] = Field(default_factory=lambda: list(PRECISIONS), min_length=1)
    calibration_images: int = Field(default=200, ge=1)
    io: Literal["float", "int8"] = "float"
    # "mnn" is opt-in (docs/mnn.md): not in FORMATS, the default.
    formats: list[Literal["tflite", "ncnn", "onnx", "mnn"]] = Field(default_factory=lambda: list(FORMATS), min_length=1)
    ncnn_precisions: list[Literal["fp32", "fp16", "int8"]] = Field(default_factory=lambda: list(NCNN_PRECISIONS), min_length=1)
    # ncnn int8: activation calibration (mse, measured best in docs/int8-ncnn.md; kl as ncnn2table; percentile; minmax;
    # auto = per layer the least measured error among kl, percentile, mse) and
    # the convolution / dense layers kept in float ("first", "last" or ncnn layer names).
    ncnn_calibration: Literal["kl", "percentile", "minmax", "mse", "auto"] = "mse"
    ncnn_percentile: float = Field(default=99.99, gt=0, le=100)
    ncnn_float_layers: list[str] = Field(default_factory=list)
    mnn_precisions: list[Literal["fp32", "fp16", "int8"]] = Field(default_factory=lambda: list(MNN_PRECISIONS), min_length=1)
    # MNN int8: mnnquant's activation ranges, or auto: each, keeping the one agreeing most with float (stages/mnn.py).
    mnn_calibration: Literal["auto", "ema", "kl"] = "auto"
    # int8 float fallback, TFLite int8-ptq and ncnn int8 (docs/int8.md): "auto" keeps the worst layers
    # float while int8 disagrees with the float model on more than int8_budget % of a few hundred
    # training images, or (with 100+ never-fitted ones) loses more than int8_budget points of top-1
    # on those (quant.int8_decision); "off" ships the plain conversion.
    int8_fallback: Literal["auto", "off"] = "auto"
    int8_budget: float = Field(default=1.0, ge=0)
    # ONNX input: the N,C,H,W shape to fix dynamic dimensions to.
    input_shape: list[int] | None = Field(default=None, min_length=4, max_length=4)
    coreml: bool = False  # also convert each float model to Core ML (.mlpackage) for the iOS app

    # Benchmarks.
    targets: list[str] = Field(default_factory=lambda: ["host"], min_length=1)  # see pipeline/targets/spec.py
    threads: list[int] | None = None  # None: 1 and every core
    warmup: int = Field(default=10, ge=0)
    runs: int = Field(default=50, ge=1)
    profile_ops: bool = False  # each TFLite artifact's ops timed alone on real targets (pipeline/targets/op_profile.py)
    # Emulated targets: validation images whose accuracy their own kernels compute (0: off; docs/accuracy-on-arm.md).
    arm_val_images: int = Field(default=128, ge=0)
    # ssh targets (pipeline/targets/ssh.py): the board's Python, the key, the known_hosts file and
    # the board folder for the per-run temp folder; None: ssh's own defaults and the board's /tmp.
    ssh_python: str | None = None  # None: the venv `deploy devices --setup` made, else python3
    ssh_key: Path | None = None
    ssh_known_hosts: Path | None = None
    ssh_dir: str | None = None
    # adb targets (pipeline/targets/adb.py): the runtimes' benchmark binaries built for the device's
    # ABI, and the rest before each artifact.
    adb_benchmark_model: Path | None = None
    adb_benchncnn: Path | None = None
    adb_cooldown_s: float = Field(default=10.0, ge=0)

    # Gates and safety.
    max_accuracy_drop: float | None = Field(default=None, ge=0)
    # Constraints on the recommended artifact only (they fail nothing): MB = 10^6 bytes;
    # latency = p50 at the fewest threads measured per target (1 by default).
    max_size_mb: float | None = Field(default=None, gt=0)
    max_latency_ms: float | None = Field(default=None, gt=0)
    trust_model: bool = False
    # Built-in models: the backbone's weights, "imagenet" (keras.applications' MobileNet V1/V2, from
    # Keras's cache: nothing is downloaded) or a Keras model file of the same family (models/transfer.py).
    pretrained: str | None = None
    force: bool = False

    # Where stages run (they do not change what is built, so they are in no cache key):
    # --jobs N local worker processes (None: as many as cores and memory allow), or a Ray cluster.
    jobs: int | None = Field(default=None, ge=1)
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = None  # None: RAY_ADDRESS, else a local Ray instance

    @field_validator("models")
    @classmethod
    def _expand_all(cls, models: list[str]) -> list[str]:
        expanded: list[str] = []
        for m in models:
            for name in BUILTIN_MODELS if m == "all" else [m]:
                if name not in expanded:
                    expanded.append(name)
        return expanded

    @field_validator("sparsity")
    @classmethod
    def _sparsity_needs_magnitude(cls, sparsity: float, info) -> float:
        if info.data.get("prune") != "magnitude":
            raise ValueError("applies only with --prune magnitude")
        return sparsity

    @field_validator("prune_speedup")
    @classmethod
    def _speedup_needs_filter_pruning(cls, speedup: float | None, info) -> float | None:
        if speedup is not None and info.data.get("prune") != "l1-filter":
            raise ValueError("applies only with --prune l1-filter")
        return speedup

    @field_validator("prune_ratios_from")
    @classmethod
    def _ratios_need_filter_pruning(cls, path: Path | None, info) -> Path | None:
        if path is not None and info.data.get("prune") != "l1-filter":
            raise ValueError("applies only with --prune l1-filter")
        if path is not None and info.data.get("prune_speedup") is not None:
            raise ValueError("give --prune-speedup or --prune-ratios-from, not both")
        return path

    @field_validator("cluster")
    @classmethod
    def _cluster_count(cls, cluster: int) -> int:
        if cluster == 1:
            raise ValueError("give 2 or more clusters per kernel (0: no clustering)")
        return cluster

    @field_validator("std")
    @classmethod
    def _std_nonzero(cls, std: list[float]) -> list[float]:
        if any(s == 0 for s in std):
            raise ValueError("std values must be non-zero")
        return _one_or_three(std)

    @field_validator("mean")
    @classmethod
    def _mean_count(cls, mean: list[float]) -> list[float]:
        return _one_or_three(mean)

    @field_validator("targets")
    @classmethod
    def _targets_known(cls, targets: list[str]) -> list[str]:
        from pipeline.targets.spec import TargetNameError, parse_targets

        try:
            return [target.name for target in parse_targets(targets)]
        except TargetNameError as e:  # the message names the bad value; _describe adds the flag
            raise PydanticCustomError("target", "{message}", {"message": f"{e.value!r}: {e.why}"}) from None

    @field_validator("input_shape")
    @classmethod
    def _shape_positive(cls, shape: list[int] | None) -> list[int] | None:
        if shape is not None and any(d < 1 for d in shape):
            raise ValueError("input shape dims must be positive integers (N,C,H,W)")
        return shape

    @field_validator("threads")
    @classmethod
    def _threads_positive(cls, threads: list[int] | None) -> list[int] | None:
        if threads is not None and (not threads or any(t < 1 for t in threads)):
            raise ValueError("thread counts must be positive integers")
        return threads


def _one_or_three(values: list[float]) -> list[float]:
    if len(values) not in (1, 3):
        raise ValueError("give 3 values (one per RGB channel) or 1 (grayscale, or the same for every channel)")
    return values


def preprocessing_given(config: BuildConfig) -> bool:
    """Did the user set any preprocessing (flag or config key)? If not, a user model's is measured."""
    return bool({"mean", "std", "channel_order"} & config.model_fields_set)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as e:
        raise UserInputError(f"{path}: cannot read config file ({e.strerror or e})") from e
    except UnicodeDecodeError as e:
        raise UserInputError(f"{path}: not a YAML config file (not UTF-8 text at byte {e.start})") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        raise UserInputError(f"{path}: not valid YAML{line}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserInputError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    return data


def _describe(error: dict[str, Any], from_flags: set[str], config_path: Path | None) -> str:
    """One line naming the flag or the config key that is wrong, and why."""
    loc = error["loc"]
    key = str(loc[0]) if loc else "?"
    if error["type"] == "extra_forbidden":
        allowed = ", ".join(BuildConfig.model_fields)
        return f"{config_path}: unknown key '{key}' (allowed: {allowed})"
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:])
    if key in from_flags or config_path is None:
        name = FLAG_NAMES.get(key, f"--{key.replace('_', '-')}")
    else:
        name = f"{config_path}: key '{key}{where}'"
    return f"{name}: {error['msg']} (got {error.get('input')!r})"


def load_config(config_path: Path | None = None, overrides: dict[str, Any] | None = None) -> BuildConfig:
    """Merge a YAML file with flag overrides (flags win) into a validated BuildConfig."""
    values = _read_yaml(config_path) if config_path else {}
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    values.update(flags)
    try:
        return BuildConfig(**values)
    except ValidationError as e:
        raise UserInputError(_describe(e.errors()[0], set(flags), config_path)) from e


def resolved_augment(config: BuildConfig) -> str:
    """The training augmentation: as given, else affine."""
    return config.augment if config.augment is not None else "affine"


def qat_augment(config: BuildConfig, source: str) -> str:
    """QAT's augmentation: as given; else a built-in model's float training's, and none for a model
    the user trained (fine-tuning it on crops it never saw pulls it away from what it learned)."""
    if config.augment is not None or is_builtin(source):
        return resolved_augment(config)
    return "none"


def resolved_input_size(config: BuildConfig) -> int:
    """The input size for built-in architectures (user models bring their own)."""
    if config.input_size is not None:
        return config.input_size
    return DEMO_INPUT_SIZE if config.data == "demo" else DEFAULT_INPUT_SIZE


def is_builtin(model: str) -> bool:
    return model in BUILTIN_MODELS


def is_onnx(model: str) -> bool:
    return model.lower().endswith(".onnx")
