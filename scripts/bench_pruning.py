"""Filter-pruned int8 against unpruned int8 in LiteRT on this host, at 224x224 (issue 12's latency target).

For each model (MobileNet V2 and ShuffleNet V2 by default; 1000 classes, the family's default alpha,
random weights built in code: latency depends on the layer shapes, not on what the weights learned):

    unpruned   the model, int8-ptq (calibrated on 8 random images)
    pruned     the same model filter-pruned (pipeline.compress.filter_pruning) to --keep-macs, int8-ptq

When `--ratios-from` names a build's output folder, the per-group ratios are chosen as that build's
chooser would at this input size: its `prune` stage's sensitivity curves (the accuracy each group
loses, measured on the build's data, e.g. the demo digits at 32x32) with this model's MACs and
estimated latency (pipeline.compress.sensitivity.choose). The build's own ratios do not carry over:
layers' shares of the MACs depend on the input size (a 32x32 build's ratios kept 53.9 % of
ShuffleNet V2's MACs at 224x224). Otherwise every group is pruned at one ratio, the smallest that
reaches --keep-macs (Li et al.'s uniform baseline).

Each measurement is a fresh process (the pipeline's host runner, 1 thread by default, XNNPACK), the two
files alternate within each round so load drift hits both alike, and the ratio is taken per round.

    .venv/bin/python scripts/bench_pruning.py [--ratios-from build/demo-p50] [--rounds 3] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def sensitivity_curves(out: Path, family: str) -> dict | None:
    """The sensitivity curves of the `prune` stage a build ran on `family` (None: that build has none)."""
    for result in sorted((out / "cache" / "prune").glob("*/result.json")):
        label = json.loads(result.with_name("lineage.json").read_text())["label"]  # "prune mobilenet_v2 l1-filter"
        if label.split()[1] == family:
            return json.loads(result.read_text())["sensitivity"]
    return None


def uniform_ratios(graph, keep_macs: float) -> dict[str, float]:
    """One ratio for every group, the smallest (to 0.001) whose pruned model keeps <= keep_macs of the MACs."""
    total = graph.macs()
    low, high = 0.0, 0.95
    for _ in range(12):
        middle = (low + high) / 2
        kept = graph.macs(graph.keep_mask({g.name: middle for g in graph.groups})) / total
        low, high = (middle, high) if kept > keep_macs else (low, middle)
    return {g.name: high for g in graph.groups}


def build_files(folder: Path, name: str, size: int, keep_macs: float, ratios_from: Path | None) -> tuple[dict, dict]:
    from converters import tflite
    from pipeline.compress import filter_pruning
    from pipeline.compress.sensitivity import choose, latency_estimate
    from pipeline.models.architectures import build

    model = build(name, size, 1000)
    graph = filter_pruning.read_graph(model)
    curves = sensitivity_curves(ratios_from, name) if ratios_from else None
    if curves:
        unknown = {c["group"] for c in curves["groups"]} ^ {g.name for g in graph.groups}
        if unknown:
            raise SystemExit(f"{name}: groups {sorted(unknown)[:3]} are not in both the build's model and this one")
        ratios, source = choose(graph, curves, keep_macs), f"chosen from a build's sensitivity curves ({ratios_from})"
    else:
        ratios, source = uniform_ratios(graph, keep_macs), "uniform"
    keep = graph.keep_mask(ratios)
    pruned = filter_pruning.prune(graph, keep)
    calibration = np.random.default_rng(0).uniform(-1, 1, (8, size, size, 3)).astype(np.float32)
    files = {variant: tflite.write(tflite.convert(net, "int8-ptq", calibration), folder / f"{name}_{variant}.tflite")
             for variant, net in (("unpruned", model), ("pruned", pruned))}
    facts = {"ratios": source, "macs_kept": round(graph.macs(keep) / graph.macs(), 4),
             "estimated_latency_kept": round(latency_estimate(graph, keep) / latency_estimate(graph), 4),
             "params": {"unpruned": int(model.count_params()), "pruned": int(pruned.count_params())}}
    return files, facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mobilenet_v2,shufflenet_v2")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--keep-macs", type=float, default=0.5)
    parser.add_argument("--ratios-from", type=Path, help="a build's --out folder: its prune stages' sensitivity curves choose the ratios")
    parser.add_argument("--memory-weight", type=float,
                        help="the chooser's MAC-equivalents per activation element (sensitivity.MEMORY_WEIGHT; "
                             "scripts/fit_pruning_latency.py fits it on a machine) [the pipeline's]")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()

    from pipeline.compress import sensitivity
    from pipeline.targets.host import alternating_p50, machine_line

    if args.memory_weight is not None:
        sensitivity.MEMORY_WEIGHT = args.memory_weight  # read by latency_estimate at each call
    print(f"chooser's memory weight: {sensitivity.MEMORY_WEIGHT:g}", flush=True)

    print(f"load before: {os.getloadavg()[0]:.2f} (1-min average)", flush=True)
    everything = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            print(f"{name}: building, pruning and converting to int8 at {args.size}x{args.size} ...", flush=True)
            files, facts = build_files(Path(tmp), name, args.size, args.keep_macs, args.ratios_from)
            print(f"  {json.dumps(facts)}", flush=True)
            p50, result = alternating_p50(files, args.rounds, args.threads, args.warmup, args.runs)
            speedups = [u / p for u, p in zip(p50["unpruned"], p50["pruned"])]
            everything[name] = {**facts, "p50_ms": p50, "speedup_per_round": speedups}
            print(f"{name}: MACs kept {facts['macs_kept']:.3f}; int8 p50 unpruned {statistics.median(p50['unpruned']):.3f} ms, "
                  f"pruned {statistics.median(p50['pruned']):.3f} ms; speed-up median {statistics.median(speedups):.2f}x "
                  f"(per round: {', '.join(f'{s:.2f}' for s in speedups)})", flush=True)
    print("\n" + machine_line(result, args.threads))
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1))


if __name__ == "__main__":
    main()
