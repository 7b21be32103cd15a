"""p50 latency of LiteRT, ncnn and MNN at fp32 and int8 on this host, in one run (issue 29's table).

Builds MobileNet V2 and ShuffleNet V2 (alpha 1.0, 224x224, 1000 classes) in code with random
weights (latency does not depend on their values), converts each with the pipeline's own
converters: TFLite fp32 and int8-ptq, ncnn fp32 and int8 (from the ONNX export), MNN fp32 and
int8 (from the same ONNX), int8 calibrated on random images. Then times every artifact with the
pipeline's host runner (a fresh process per measurement, warm-up, timed runs), all six
alternating, several rounds, so drift in machine load hits each alike. Prints p50 per round, the
median per artifact, and the CPU with its int8 instructions.

    .venv/bin/python scripts/bench_runtimes.py [--threads 1] [--runs 50] [--rounds 3] [--models mobilenet_v2,shufflenet_v2]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np

ARTIFACTS = ("tflite fp32", "tflite int8", "ncnn fp32", "ncnn int8", "mnn fp32", "mnn int8")


def build_artifacts(folder: Path, name: str, size: int, alpha: float) -> dict[str, Path]:
    from converters import mnn, ncnn, onnx, tflite
    from pipeline.models.architectures import build

    model = build(name, size, 1000, alpha)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, size, size, 3), dtype=np.uint8)
    x = (images.astype(np.float32) - 127.5) / 127.5
    paths = {f"tflite {p.split('-')[0]}": tflite.write(tflite.convert(model, p, x), folder / f"{name}_{p}.tflite")
             for p in ("fp32", "int8-ptq")}
    exported = onnx.from_keras(model, folder / f"{name}.onnx")
    fixed = onnx.save(ncnn.prepare_for_pnnx(onnx.load(exported)), folder / f"{name}_pnnx.onnx")
    shape = onnx.signature(onnx.load(fixed), fixed, None).input_shape
    param, weights = ncnn.convert(fixed, shape, False, folder, f"{name}_fp32")
    scales = ncnn.calibrate(param, weights, x.transpose(0, 3, 1, 2), "mse", 99.99, set())
    int8_param = folder / f"{name}_int8.ncnn.param"
    ncnn.write_int8(param, weights, scales, int8_param, int8_param.with_suffix(".bin"))
    paths["ncnn fp32"], paths["ncnn int8"] = param, int8_param
    paths["mnn fp32"] = mnn.convert(exported, folder / f"{name}_fp32.mnn")
    paths["mnn int8"] = mnn.quantize(paths["mnn fp32"], folder / f"{name}_int8.mnn", images, mean=(127.5,) * 3,
                                     std=(127.5,) * 3, channel_order="RGB", method="ema", workdir=folder)
    return {key: paths[key] for key in ARTIFACTS}


def int8_instructions() -> str:
    flags = set()
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith(("flags", "Features")):
                flags |= set(line.split(":", 1)[1].split())
    wanted = ("avx2", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")
    return ", ".join(f for f in wanted if f in flags) or "none of " + "/".join(wanted)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mobilenet_v2,shufflenet_v2")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from pipeline.targets.host import run_benchmark

    with tempfile.TemporaryDirectory() as tmp:
        artifacts = {}
        for name in args.models.split(","):
            print(f"converting {name} alpha {args.alpha} {args.size}x{args.size} to {', '.join(ARTIFACTS)} ...", flush=True)
            folder = Path(tmp) / name
            folder.mkdir()
            artifacts[name] = build_artifacts(folder, name, args.size, args.alpha)
        p50 = {(name, key): [] for name, paths in artifacts.items() for key in paths}
        versions = {}
        for round_ in range(args.rounds):
            for name, paths in artifacts.items():
                for key, path in paths.items():
                    r = run_benchmark(path, args.threads, args.warmup, args.runs)
                    versions[key.split()[0]] = f"{r['runtime']} {r['runtime_version']}"
                    p50[(name, key)].append(r["latency_ms"]["p50"])
                    print(f"round {round_ + 1} {name} {key:<12} p50 {r['latency_ms']['p50']:8.3f} ms  "
                          f"p90 {r['latency_ms']['p90']:8.3f}  n={r['latency_ms']['n']}", flush=True)
        cpu = r["cpu"]
        print(f"\nCPU: {cpu['model']} ({cpu['machine']}, {cpu['count']} cores); int8 instructions: {int8_instructions()}")
        print(f"runtimes: {', '.join(versions.values())}; {args.threads} thread(s), {args.size}x{args.size}, "
              f"median of {args.rounds} rounds, p50 ms:\n")
        print("| model | " + " | ".join(ARTIFACTS) + " |")
        print("|---|" + "---:|" * len(ARTIFACTS))
        for name in artifacts:
            print(f"| {name} | " + " | ".join(f"{statistics.median(p50[(name, key)]):.2f}" for key in ARTIFACTS) + " |")


if __name__ == "__main__":
    main()
