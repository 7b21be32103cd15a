"""MobileNet V2 (224x224) fp16 TFLite on arm64-emu: which XNNPACK kernels ran (fp16 or fp32) and how far from fp32.

Builds the model in code (untrained weights: nothing downloaded), converts it with the pipeline's
converter to fp32 and fp16 (fp16 carries the reduced-precision metadata XNNPACK needs for fp16
kernels), then runs both through the pipeline's device runner on the arm64 emulator (QEMU,
Cortex-A76: ARMv8.2 FP16 arithmetic) and on this host, on the same seeded images. Prints, per
machine, the arithmetic the runner found the fp16 artifact computed in (it compares the outputs
with a copy whose metadata key is renamed, see device_runner.tflite_arithmetic), and the largest
difference between the fp16 and fp32 artifacts on the logits (the softmax's input) and on the
softmax outputs. Emulated timings mean nothing and are not printed.

    .venv/bin/python scripts/bench_fp16.py [--size 224] [--alpha 1.0] [--images 4]
"""
from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import numpy as np


def build_artifacts(folder: Path, size: int, alpha: float, classes: int, x: np.ndarray) -> dict[str, Path]:
    from converters import tflite
    from pipeline.models.architectures import build

    model = build("mobilenet_v2", size, classes, alpha)
    # Untrained BatchNorm statistics (mean 0, variance 1) let the activations vanish through the 50-odd
    # layers (logits ~1e-12, below fp16's range): take each layer's statistics from 16 other random
    # images, as training would (from the few measured images alone, a 1x1 late layer's variance is ~0).
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            layer.momentum = 0.0
    model(np.random.default_rng(1).uniform(-1, 1, (16, *x.shape[1:])).astype(np.float32), training=True)
    return {p: tflite.write(tflite.convert(model, p), folder / f"mobilenet_v2_{p}.tflite") for p in ("fp32", "fp16")}


def run(where: str, model: Path, inputs: Path, folder: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The runner's record and saved outputs (output_0, logits) for `model` on `where` (host or arm64)."""
    from pipeline.targets import emulated, host, output_check
    from pipeline.targets.host import BenchError, parse_result, tail

    out = folder / f"{model.stem}.{where}.npz"
    check = output_check.prepare(model, folder, inputs)
    args = check.runner_args(model) + ["--outputs", str(out)]
    if where == "host":
        record = host.run_benchmark(model, 1, 0, 1, extra_args=args)
    else:
        command, env = emulated.runner_command(where, model, 1, 0, 1, out, extra_args=args[:-2])
        proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
        record = parse_result(proc.stdout) if proc.returncode == 0 else None
        if record is None:
            raise BenchError(model, f"on {where}-emu: runner exited with {proc.returncode}", tail(proc.stderr))
    with np.load(out) as saved:
        return record, {k: saved[k].astype(np.float64) for k in ("output_0", "logits") if k in saved.files}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--images", type=int, default=4, help="seeded random images in [-1, 1) (each takes seconds under QEMU)")
    args = parser.parse_args()
    from pipeline.targets import emulated

    if not emulated.is_set_up("arm64"):
        raise SystemExit(f"arm64-emu: {emulated.status('arm64')}")
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    with tempfile.TemporaryDirectory(prefix="bench-fp16-") as tmp:
        folder = Path(tmp)
        x = np.random.default_rng(0).uniform(-1, 1, (args.images, args.size, args.size, 3)).astype(np.float32)
        artifacts = build_artifacts(folder, args.size, args.alpha, args.classes, x)
        inputs = folder / "inputs.npz"
        with open(inputs, "wb") as f:
            np.savez(f, input_0=x)
        print(f"MobileNet V2 alpha {args.alpha:g}, {args.size}x{args.size}, {args.classes} classes, untrained (BatchNorm statistics from the images); "
              f"{args.images} images; fp32 {artifacts['fp32'].stat().st_size / 1e6:.2f} MB, "
              f"fp16 {artifacts['fp16'].stat().st_size / 1e6:.2f} MB")
        for where in ("arm64", "host"):
            fp16_record, fp16 = run(where, artifacts["fp16"], inputs, folder)
            _, fp32 = run(where, artifacts["fp32"], inputs, folder)
            logits = np.abs(fp16["logits"] - fp32["logits"])
            scale = np.abs(fp32["logits"]).max()
            same_top1 = np.mean(fp16["logits"].reshape(len(x), -1).argmax(1) == fp32["logits"].reshape(len(x), -1).argmax(1))
            name = "arm64-emu (cortex-a76)" if where == "arm64" else "host"
            print(f"{name}: fp16 artifact ran with delegate {fp16_record['delegate']}, {fp16_record['arithmetic']} arithmetic "
                  f"(XNNPACK {fp16_record['arithmetic']} kernels); fp16 vs fp32: logits max abs {logits.max():.3g} "
                  f"({logits.max() / scale:.2%} of max |logit| {scale:.3g}), softmax max abs "
                  f"{np.abs(fp16['output_0'] - fp32['output_0']).max():.3g}, top-1 agreement {same_top1:.0%}")


if __name__ == "__main__":
    main()
