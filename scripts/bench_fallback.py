"""What the int8 float fallback costs in latency on this host: plain int8 against 1 .. 5 layers kept float.

For MobileNet V2 at 224x224 (1000 classes, random weights built in code, BatchNorm statistics set
from a few random images so the activations have realistic ranges), converted to int8-ptq by the
pipeline's converter. TensorFlow's QuantizationDebugger ranks the layers by their own int8 error
(nrmse, pipeline.quant.tflite_layers, as a build does) and the fallback's mechanism keeps the worst
1, 2, ... FALLBACK_CAP layers in float through the debugger's deny list (no second calibration).
Each file is timed in a fresh process (the pipeline's host runner, XNNPACK, 1 thread by default),
the files alternating within each round, the ratio to the plain int8 model taken per round.

The build keeps a layer float only when it is broken (nrmse >= 1) and int8 is over budget; with
random weights no layer is broken, so this measures the price of the mechanism at its cap, worst
case first, not a decision.

    .venv/bin/python scripts/bench_fallback.py [--size 224] [--rounds 3] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build_files(folder: Path, size: int, images: int) -> tuple[dict[str, Path], list[dict]]:
    from converters import tflite
    from pipeline.models.architectures import build
    from pipeline.quant import tflite_layers
    from pipeline.tf_import import tensorflow

    tf = tensorflow()
    model = build("mobilenet_v2", size, 1000)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (images, size, size, 3)).astype(np.float32)
    model(x, training=True)  # BatchNorm moving statistics move towards these activations
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            layer.momentum = 0.0
    model(x, training=True)  # ... and now equal this batch's
    calibration, held_out = x[: images // 2], x[images // 2:]
    plain = tflite.convert(model, "int8-ptq", calibration)
    debug = tflite_layers.debugger(tflite.make_converter(model, "int8-ptq", calibration), held_out)
    rows, _ = tflite_layers.layer_errors(debug)
    files = {"plain int8": tflite.write(plain, folder / "plain.tflite")}
    for count in range(1, tflite_layers.FALLBACK_CAP + 1):
        denied = [row["layer"] for row in rows[:count]]
        debug.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=denied)
        files[f"{count} float"] = tflite.write(debug.get_nondebug_quantized_model(), folder / f"float{count}.tflite")
    return files, rows[: tflite_layers.FALLBACK_CAP]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--images", type=int, default=16, help="random images: half calibrate, half rank the layers")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from pipeline.targets.host import alternating_p50, machine_line

    print(f"load before: {os.getloadavg()[0]:.2f} (1-min average)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"MobileNet V2 {args.size}x{args.size}: converting, ranking layers, keeping 1..N float ...", flush=True)
        files, worst = build_files(Path(tmp), args.size, args.images)
        for row in worst:
            print(f"  kept float in this order: {row['layer']} ({row['op']}, nrmse {row['nrmse']:.3f})")
        p50, result = alternating_p50(files, args.rounds, args.threads, args.warmup, args.runs)
        plain = p50["plain int8"]
        print("\nlayers float | size MB | p50 ms (median of rounds) | p50 / plain int8 (median of per-round ratios)")
        for name, path in files.items():
            ratio = statistics.median(t / p for t, p in zip(p50[name], plain))
            print(f"{name:<12} | {path.stat().st_size / 1e6:7.2f} | {statistics.median(p50[name]):9.3f} | {ratio:.3f}x")
    print("\n" + machine_line(result, args.threads))


if __name__ == "__main__":
    main()
