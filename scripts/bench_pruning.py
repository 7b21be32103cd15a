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

With `--latency-only`, a third file: the ratios with the least *estimated* latency at --keep-macs,
whatever they cost in top-1 (`latency_only_ratios`). Not a model to ship: it shows how much of a MAC
budget this host's int8 kernels turn into time at best, as far as the estimate knows.

Each measurement is a fresh process (the pipeline's host runner, 1 thread by default, XNNPACK), the
files alternate within each round so load drift hits all alike, and each ratio is taken per round.

    .venv/bin/python scripts/bench_pruning.py [--ratios-from build/demo-p50] [--latency-only] [--rounds 3] [--threads 1]
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


def latency_only_ratios(graph, keep_macs: float) -> dict[str, float]:
    """Per-group ratios with the least estimated latency at keep_macs, accuracy ignored: greedily, the
    step (one group to its next ratio) that saves the most estimated latency per MAC it removes."""
    from pipeline.compress.sensitivity import RATIOS, latency_estimate

    total = graph.macs()
    chosen = {g.name: 0.0 for g in graph.groups}
    macs, latency = total, latency_estimate(graph)
    while macs > keep_macs * total:
        options = []
        for name, ratio in chosen.items():
            for later in (r for r in RATIOS if r > ratio):
                keep = graph.keep_mask({**chosen, name: later})
                trial_macs = graph.macs(keep)
                if trial_macs < macs:  # the first ratio that removes a unit (rounding)
                    trial_latency = latency_estimate(graph, keep)
                    options.append(((latency - trial_latency) / (macs - trial_macs), name, later, trial_macs, trial_latency))
                    break
        if not options:
            raise SystemExit(f"--keep-macs {keep_macs:g}: unreachable")
        _, name, chosen[name], macs, latency = max(options)
    return chosen


def build_files(folder: Path, name: str, size: int, keep_macs: float, ratios_from: Path | None,
                latency_only: bool) -> tuple[dict, dict]:
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
    pruned_ratios = {"pruned": ratios, **({"latency-only": latency_only_ratios(graph, keep_macs)} if latency_only else {})}
    calibration = np.random.default_rng(0).uniform(-1, 1, (8, size, size, 3)).astype(np.float32)
    files = {"unpruned": tflite.write(tflite.convert(model, "int8-ptq", calibration), folder / f"{name}_unpruned.tflite")}
    facts = {"ratios": source, "params": {"unpruned": int(model.count_params())}}
    for variant, chosen in pruned_ratios.items():
        keep = graph.keep_mask(chosen)
        pruned = filter_pruning.prune(graph, keep)
        files[variant] = tflite.write(tflite.convert(pruned, "int8-ptq", calibration), folder / f"{name}_{variant}.tflite")
        facts[variant] = {"macs_kept": round(graph.macs(keep) / graph.macs(), 4), "params": int(pruned.count_params()),
                          "estimated_latency_kept": round(latency_estimate(graph, keep) / latency_estimate(graph), 4)}
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
    parser.add_argument("--latency-only", action="store_true",
                        help="also time the ratios with the least estimated latency at --keep-macs, accuracy ignored")
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
            files, facts = build_files(Path(tmp), name, args.size, args.keep_macs, args.ratios_from, args.latency_only)
            print(f"  {json.dumps(facts)}", flush=True)
            p50, result = alternating_p50(files, args.rounds, args.threads, args.warmup, args.runs)
            everything[name] = {**facts, "p50_ms": p50}
            print(f"{name}: int8 p50 unpruned {statistics.median(p50['unpruned']):.3f} ms", flush=True)
            for variant in [v for v in files if v != "unpruned"]:
                speedups = [u / p for u, p in zip(p50["unpruned"], p50[variant])]
                everything[name][variant]["speedup_per_round"] = speedups
                print(f"  {variant}: MACs kept {facts[variant]['macs_kept']:.3f}; p50 {statistics.median(p50[variant]):.3f} ms; "
                      f"speed-up median {statistics.median(speedups):.2f}x (per round: {', '.join(f'{s:.2f}' for s in speedups)})",
                      flush=True)
    print("\n" + machine_line(result, args.threads))
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1))


if __name__ == "__main__":
    main()
