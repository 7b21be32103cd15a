"""MobileNetV2 (alpha 1.0, 224x224) on this host: full-int8 vs fp32 latency in LiteRT, in one run.

Builds the model in code (random weights: latency does not depend on their values),
converts it with the pipeline's own converter (fp32 and int8 PTQ calibrated on random
images), then benchmarks both with the pipeline's host runner: each measurement in a
fresh process, warm-up runs, then timed runs. The two artifacts are measured alternately,
several rounds each, so drift in machine load hits both alike. Prints p50 per round and
the median ratio.

    .venv/bin/python scripts/bench_int8_vs_fp32.py [--threads 1] [--runs 50] [--rounds 3]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np


def build_artifacts(folder: Path, size: int, alpha: float) -> dict[str, Path]:
    from converters import tflite
    from pipeline.models.architectures import build

    model = build("mobilenet_v2", size, 1000, alpha)
    calibration = np.random.default_rng(0).uniform(-1, 1, (16, size, size, 3)).astype(np.float32)
    return {
        precision: tflite.write(tflite.convert(model, precision, calibration), folder / f"mobilenet_v2_{precision}.tflite")
        for precision in ("fp32", "int8-ptq")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from pipeline.targets.host import run_benchmark

    with tempfile.TemporaryDirectory() as tmp:
        print(f"converting MobileNetV2 alpha {args.alpha} {args.size}x{args.size} to fp32 and int8 ...", flush=True)
        artifacts = build_artifacts(Path(tmp), args.size, args.alpha)
        p50 = {name: [] for name in artifacts}
        for round_ in range(args.rounds):
            for name, path in artifacts.items():
                r = run_benchmark(path, args.threads, args.warmup, args.runs)
                lat = r["latency_ms"]
                p50[name].append(lat["p50"])
                print(
                    f"round {round_ + 1} {name:<9} {path.stat().st_size / 1e6:5.2f} MB  delegate={r['delegate']}  "
                    f"threads={r['threads']}  p50 {lat['p50']:8.3f} ms  p90 {lat['p90']:8.3f}  p99 {lat['p99']:8.3f}  "
                    f"mean {lat['mean']:8.3f} ± {lat['std']:.3f}  n={lat['n']}  peak RSS {r['peak_rss_mb']:.0f} MB",
                    flush=True,
                )
        ratios = [f / i for f, i in zip(p50["fp32"], p50["int8-ptq"])]
        cpu = r["cpu"]
        print(f"\nCPU: {cpu['model']} ({cpu['machine']}, {cpu['count']} cores); runtime {r['runtime']} {r['runtime_version']}")
        print(f"p50 fp32  (median of rounds): {statistics.median(p50['fp32']):.3f} ms")
        print(f"p50 int8  (median of rounds): {statistics.median(p50['int8-ptq']):.3f} ms")
        print(f"fp32/int8 p50 ratio: median {statistics.median(ratios):.2f}x (per round: {', '.join(f'{x:.2f}' for x in ratios)})")


if __name__ == "__main__":
    main()
