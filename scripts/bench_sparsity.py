"""Magnitude-sparse (80 %) fp32 against dense fp32 in LiteRT on this host, with and without XNNPACK's sparse path.

For MobileNet V2 and ShuffleNet V2 at 224x224 (1000 classes), built in code: random weights,
3x3 stride-2 convolutions re-padded (1, 1) as XNNPACK's sparse path requires
(pipeline.compress.sparsity.symmetric_stride2_padding), then tfmot's magnitude masks at 80 %
applied to the 1x1 convolutions without training (latency depends on where the zeros are, not
on accuracy). Three fp32 files per model, converted by the pipeline's converter:

    dense            the re-padded model, no zeros
    sparse           the 80 %-sparse model stored dense: XNNPACK runs its dense kernels on zeros
    sparse-storage   the same weights stored sparse (DENSIFY ops): XNNPACK may take its sparse path

Each measurement is a fresh process (the pipeline's host runner, 1 thread, warm-up then timed
runs), the files alternate within each round so load drift hits all alike, and the ratios are
per round. Whether the sparse path applied is measured (pipeline.compress.xnnpack_sparse: sparse
vs dense storage of the same weights, bit-identical outputs = not applied), on this host and,
with --arm64-emu, on the emulated Cortex-A76 (its latencies are emulated: the verdict counts, not
the speed).

    .venv/bin/python scripts/bench_sparsity.py [--models mobilenet_v2,shufflenet_v2] [--rounds 3] [--arm64-emu]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VARIANTS = ("dense", "sparse", "sparse-storage")


def build_files(folder: Path, name: str, size: int, sparsity: float) -> tuple[dict[str, Path], dict]:
    from converters import tflite
    from pipeline.compress import sparsity as sp
    from pipeline.models.architectures import build

    dense, repadded = sp.symmetric_stride2_padding(build(name, size, 1000))
    sparse = sp.sparsify_untrained(dense, sparsity)
    facts = {"repadded_layers": len(repadded), "tfmot_policy_check": sp.xnnpack_policy_check(dense) or "ok",
             "zeros_in_1x1_kernels": sp.sparsity_report(sparse, sp.pointwise_layer_names(sparse))["pruned_layers"]}
    files = {}
    for variant, model, storage in (("dense", dense, False), ("sparse", sparse, False), ("sparse-storage", sparse, True)):
        files[variant] = tflite.write(tflite.convert(model, "fp32", sparse=storage), folder / f"{name}_{variant}.tflite")
    facts["densify_ops"] = sp.op_counts(files["sparse-storage"].read_bytes()).get("DENSIFY", 0)
    return files, facts


def verdict(files: dict[str, Path], arm64: bool) -> dict:
    from pipeline.compress.xnnpack_sparse import compare_in_process

    return compare_in_process(files["sparse-storage"], files["sparse"], rounds=2 if arm64 else 10, arm64=arm64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mobilenet_v2,shufflenet_v2")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--sparsity", type=float, default=0.8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--arm64-emu", action="store_true", help="also measure whether the sparse path applies on emulated arm64")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()

    from pipeline.targets.host import alternating_p50, machine_line

    print(f"load before: {os.getloadavg()[0]:.2f} (1-min average)", flush=True)
    everything = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            print(f"{name}: building and converting 3 fp32 files at {args.size}x{args.size} ...", flush=True)
            files, facts = build_files(Path(tmp), name, args.size, args.sparsity)
            p50, r = alternating_p50(files, args.rounds, args.threads, args.warmup, args.runs)
            ratios = {v: [d / x for d, x in zip(p50["dense"], p50[v])] for v in ("sparse", "sparse-storage")}
            host = verdict(files, arm64=False)
            arm = verdict(files, arm64=True) if args.arm64_emu else None
            everything[name] = {"facts": facts, "p50_ms": p50, "dense_over": ratios, "sparse_path_host": host, "sparse_path_arm64_emu": arm}
            print(f"{name}: {facts}")
            print(f"  p50 (median of rounds): " + ", ".join(f"{v} {statistics.median(p50[v]):.3f} ms" for v in VARIANTS))
            for v in ("sparse", "sparse-storage"):
                print(f"  dense/{v} p50 ratio: median {statistics.median(ratios[v]):.2f}x (per round: {', '.join(f'{x:.2f}' for x in ratios[v])})")
            print(f"  XNNPACK sparse path on this host: {host['sparse_path']} ({json.dumps(host)})")
            if arm is not None:
                print(f"  XNNPACK sparse path on arm64-emu (Cortex-A76, emulated times): {arm['sparse_path']} ({json.dumps(arm)})")
    print("\n" + machine_line(r, args.threads))
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1))


if __name__ == "__main__":
    main()
