"""Where TFLite conversion time goes: per precision, load / trace / convert (MLIR + calibration).

    python scripts/profile_convert.py --model mobilenet_v2 --size 32 [--repeat 1]

Builds the architecture untrained (conversion time does not depend on the weights' values),
saves it as the train stage does, then for each precision times, in one process:
  load     keras load_model of the saved file (what every convert stage did per precision)
  trace    tf.function tracing of the batch-1 concrete function
  convert  TFLiteConverter.convert() (MLIR passes; for int8 also the calibration runs)
and the same conversions once more reusing one loaded model and one traced function; last, fp32
converted as the pipeline did before (the Keras model given to the converter), for comparison.
Prints a table and the totals; numbers depend on load: `uptime` is printed beside them.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--calibration", type=int, default=200)
    args = parser.parse_args()

    from converters import tflite
    from pipeline.models import architectures, loading
    from pipeline.tf_import import tensorflow

    tf = tensorflow()
    t0 = time.perf_counter()
    model = architectures.build(args.model, args.size, 10, None)
    print(f"build {args.model} {args.size}x{args.size}: {time.perf_counter() - t0:.1f} s")
    folder = Path(tempfile.mkdtemp())
    model.save(folder / "model.keras")
    calibration = np.random.default_rng(0).uniform(-1, 1, (args.calibration, args.size, args.size, 3)).astype(np.float32)
    rows = []
    for precision in ("fp32", "fp16", "dynamic-int8", "int8-ptq"):
        t0 = time.perf_counter()
        loaded = loading.load_keras_model(folder / "model.keras", trusted=False)
        t1 = time.perf_counter()
        function = tflite.trace(tf, loaded)
        t2 = time.perf_counter()
        tflite.convert(loaded, precision, calibration if precision == "int8-ptq" else None, function=function)
        t3 = time.perf_counter()
        rows.append((precision, t1 - t0, t2 - t1, t3 - t2))
    print(f"{'precision':<14}{'load s':>8}{'trace s':>9}{'convert s':>11}")
    for precision, load, trace, convert in rows:
        print(f"{precision:<14}{load:>8.1f}{trace:>9.1f}{convert:>11.1f}")
    total = sum(sum(r[1:]) for r in rows)
    print(f"per-precision load+trace+convert: {total:.1f} s "
          f"(load {sum(r[1] for r in rows):.1f}, trace {sum(r[2] for r in rows):.1f}, convert {sum(r[3] for r in rows):.1f})")

    t0 = time.perf_counter()
    loaded = loading.load_keras_model(folder / "model.keras", trusted=False)
    function = tflite.trace(tf, loaded)
    for precision, *_ in rows:
        tflite.convert(loaded, precision, calibration if precision == "int8-ptq" else None, function=function)
    print(f"one load + one trace for all four: {time.perf_counter() - t0:.1f} s")

    # What the converter cost when it was given the Keras model beside the function (before the
    # change in converters/tflite._weights_only): it then saved the model, tracing every layer.
    t0 = time.perf_counter()
    given_model = tf.lite.TFLiteConverter.from_concrete_functions([function], loaded).convert()
    seconds = time.perf_counter() - t0
    same = given_model == tflite.convert(loaded, "fp32", function=function)
    print(f"fp32 with the Keras model given to the converter: {seconds:.1f} s (same bytes as ours: {same})")
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), f"| cores {os.cpu_count()}")


if __name__ == "__main__":
    main()
