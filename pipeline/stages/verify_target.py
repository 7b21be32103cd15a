"""verify_target: an artifact's accuracy computed by an ARM target's own kernels (an emulator or an ssh board).

`verify` measures on the host; the kernels a phone runs are other code (XNNPACK on aarch64, the
built-in NEON kernels of armv7's tflite-runtime, ncnn's ARM kernels) and do not always give the
host's numbers (docs/output-check.md). This stage runs a seeded sample of the validation images
(at most `images` of the `--val-max-images` sample; `--arm-val-images`) through the target's
runtime, with the same device runner the benchmark uses, and the same inputs through the host's
runner for the same artifact. Nothing is timed, so on an emulator the node takes no lease and may
run beside other work; on a board it holds the board's lease, so that it never runs beside a
benchmark there (docs/accuracy-on-arm.md).

Result: top-1 on the target, the host artifact's top-1 on the same images, agreement with the host
artifact and with the float reference, n, and the runtime / delegate / options the target used.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from pipeline.datastore import sample_positions
from pipeline.stages.base import Stage, StageOutput
from pipeline.stages.data import ValidationSampleConfig, validation_split
from pipeline.stages.reference import reference_predictions
from pipeline.targets.ssh import SshOptions

# 128 images: under QEMU a 64x64 model takes 0.1-1.6 s per image (MobileNet V2 int8 the slowest
# seen), so at most about 3.5 minutes per artifact and target; one image moves top-1 by 0.8 point.
ARM_VAL_IMAGES = 128


class VerifyTargetConfig(ValidationSampleConfig):
    target: str  # an emulated target's name (arm64-emu, armv7-emu) or an ssh board's
    target_identity: str  # its runtimes' versions (a board: its name): a result from other wheels is never reused
    ssh: SshOptions | None = None  # ssh boards only: how to reach the board and its Python
    images: int = ARM_VAL_IMAGES
    fp16: bool = False  # ncnn fp16 artifacts: fp16 storage, packing and arithmetic; MNN: low precision; as benchmarked


class VerifyTargetStage(Stage):
    name = "verify_target"
    tools = ("ai-edge-litert", "ncnn", "mnn", "numpy")
    scripts = ("pipeline.targets.device_runner",)
    Config = VerifyTargetConfig

    def run(self, config: VerifyTargetConfig, inputs: dict[str, StageOutput], workdir: Path) -> dict:
        from pipeline.targets import check_inputs
        from pipeline.targets.bench import run_benchmark
        from pipeline.targets.spec import EmulatedTarget, SshTarget, parse_target

        target = parse_target(config.target)
        if not isinstance(target, EmulatedTarget | SshTarget):
            raise ValueError(f"verify_target runs on emulated targets and ssh boards, not {config.target}")
        artifact = inputs["artifact"]
        val = validation_split(inputs["data"], config.val_max_images, config.seed)
        positions = sample_positions(len(val), config.images, config.seed)
        images, labels = val.read(positions)
        reference = reference_predictions(inputs["reference"])[positions].argmax(1)
        with tempfile.TemporaryDirectory(prefix="deploy-verify-target-") as tmp:
            path = Path(tmp) / "inputs.npz"
            n = check_inputs.write(path, images, labels, artifact.result["preprocessing"], len(positions))
            record = run_benchmark(target, config.ssh, artifact.path(artifact.result["file"]), 1, 0, 1,
                                   fp16=config.fp16, check_inputs=path)
        return summarize(record, reference, n)


def summarize(record: dict, reference: np.ndarray, n: int) -> dict:
    """The stage's result from the target's record (output_diff, check_predictions) and the float
    reference's classes on the same images."""
    diff, predictions = record["output_diff"], record["check_predictions"]
    on_target = np.asarray(predictions["target"])
    if len(on_target) != n or len(reference) != n:
        raise ValueError(f"{n} images sent, {len(on_target)} classes back from the target")
    return {
        "target": record["target"],
        "runtime": f"{record['runtime']} {record['runtime_version']}",
        "delegate": record["delegate"],
        "options": record.get("options", {}),
        "n": n,
        "top1": diff["target_top1"],
        "host_top1": diff["host_top1"],
        "host_agreement": diff["top1_agreement"],
        "float_agreement": float(np.mean(on_target == reference)),
        "logits_max_abs": diff["logits_max_abs"],
        "logits_max_steps": diff["logits_max_steps"],
        "arithmetic": record.get("arithmetic"),
    }
