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

With `--speedup X`, the ratios are chosen as `deploy build --prune-speedup X` chooses them: by a
per-layer latency table measured on this host (pipeline/stages/prune_choice.py, its cache shared with
builds) and the sensitivity curves of --ratios-from (without it, every group costs the same top-1
per step and the walk follows the table alone); the table's predicted speed-up is printed beside
the measured one.

With `--artifacts-from OUT`, nothing is built: the int8 TFLite artifacts of a build's
`--prune-speedup` (or --prune-keep-macs) variants and their unpruned models are timed here, and
each variant's speed-up is printed beside the one the build recorded (report.json).

With `--latency-only`, a third file: the ratios with the least *estimated* latency at --keep-macs,
whatever they cost in top-1 (`latency_only_ratios`). Not a model to ship: it shows how much of a MAC
budget this host's int8 kernels turn into time at best, as far as the estimate knows.

Each measurement is a fresh process (the pipeline's host runner, 1 thread by default, XNNPACK), the
files alternate within each round so load drift hits all alike, and each ratio is taken per round.

    .venv/bin/python scripts/bench_pruning.py [--ratios-from build/demo-p50] [--speedup 1.6 | --latency-only] [--rounds 3] [--threads 1]
    .venv/bin/python scripts/bench_pruning.py --artifacts-from build/p16x [--rounds 5]
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


def speedup_ratios(graph, curves: dict | None, speedup: float, threads: int, folder: Path) -> tuple[dict[str, float], float]:
    """The ratios `deploy build --prune-speedup` would choose on this host, and the speed-up its table predicts."""
    from pipeline.compress.sensitivity import RATIOS, choose_speedup
    from pipeline.stages.bench import host_identity
    from pipeline.stages.prune_choice import PruneChoiceConfig, measure

    config = PruneChoiceConfig(speedup=speedup, target="host", target_identity=host_identity(), threads=threads)
    table, summary = measure(graph, config, folder)
    print(f"  latency table: {summary['entries']} entries, {summary['timed']} timed now; unpruned {summary['unpruned_ms']:.3f} ms "
          f"measured, {summary['predicted_unpruned_ms']:.3f} ms predicted; rounds' spread {100 * summary['spread']:.1f} %", flush=True)
    if curves is None:  # every step costs the same: the walk takes the biggest measured saving first
        curves = {"baseline_top1": 1.0, "groups": [{"group": g.name, "points": [{"ratio": r, "top1": 1.0} for r in RATIOS]}
                                                    for g in graph.groups]}
    ratios = choose_speedup(graph, curves, speedup, lambda keep: table.predict(graph, keep), "host")
    return ratios, table.predict(graph) / table.predict(graph, graph.keep_mask(ratios))


def build_files(folder: Path, name: str, size: int, keep_macs: float, ratios_from: Path | None,
                latency_only: bool, speedup: float | None = None, threads: int = 1) -> tuple[dict, dict]:
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
    predicted = None
    if speedup:
        ratios, predicted = speedup_ratios(graph, curves, speedup, threads, folder)
        source = f"--speedup {speedup:g} by this host's latency table" + (f" and {ratios_from}'s curves" if curves else "")
    elif curves:
        ratios, source = choose(graph, curves, keep_macs), f"chosen from a build's sensitivity curves ({ratios_from})"
    else:
        ratios, source = uniform_ratios(graph, keep_macs), "uniform"
    pruned_ratios = {"pruned": ratios, **({"latency-only": latency_only_ratios(graph, keep_macs)} if latency_only else {})}
    calibration = np.random.default_rng(0).uniform(-1, 1, (8, size, size, 3)).astype(np.float32)
    files = {"unpruned": tflite.write(tflite.convert(model, "int8-ptq", calibration), folder / f"{name}_unpruned.tflite")}
    facts = {"ratios": source, "params": {"unpruned": int(model.count_params())},
             **({"predicted_speedup": round(predicted, 4)} if predicted else {})}
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
    parser.add_argument("--speedup", type=float, help="choose the ratios for this speed-up by a latency table measured here")
    parser.add_argument("--artifacts-from", type=Path, help="a build's --out folder: time its pruned variants' int8 artifacts")
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
    if args.artifacts_from:
        return time_build_artifacts(args)
    everything = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            print(f"{name}: building, pruning and converting to int8 at {args.size}x{args.size} ...", flush=True)
            files, facts = build_files(Path(tmp), name, args.size, args.keep_macs, args.ratios_from, args.latency_only,
                                       args.speedup, args.threads)
            print(f"  {json.dumps(facts)}", flush=True)
            p50, result = alternating_p50(files, args.rounds, args.threads, args.warmup, args.runs)
            everything[name] = {**facts, "p50_ms": p50}
            print(f"{name}: int8 p50 unpruned {statistics.median(p50['unpruned']):.3f} ms", flush=True)
            for variant in [v for v in files if v != "unpruned"]:
                speedups = [u / p for u, p in zip(p50["unpruned"], p50[variant])]
                everything[name][variant]["speedup_per_round"] = speedups
                print(f"  {variant}: MACs kept {facts[variant]['macs_kept']:.3f}; p50 {statistics.median(p50[variant]):.3f} ms; "
                      f"speed-up median {statistics.median(speedups):.2f}x (per round: {', '.join(f'{s:.2f}' for s in speedups)})"
                      + (f"; the table predicted {facts['predicted_speedup']:.2f}x" if variant == "pruned" and "predicted_speedup" in facts else ""),
                      flush=True)
    print("\n" + machine_line(result, args.threads))
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1))


def time_build_artifacts(args) -> None:
    """Time each pruned variant's int8 TFLite artifact of a build against its unpruned model's, here,
    and print the speed-up beside the one the build recorded."""
    from pipeline.report.schema import Report
    from pipeline.targets.host import alternating_p50, machine_line

    report = Report.model_validate_json((args.artifacts_from / "report.json").read_text())
    everything, result = {}, None
    for model in [m for m in report.models if m.parent and m.compression and m.compression.method == "l1-filter"]:
        for precision in ("int8-ptq", "int8-qat"):
            pair = {name: next((a for a in report.artifacts if a.model == name and a.format == "tflite" and a.precision == precision), None)
                    for name in (model.parent, model.name)}
            if all(pair.values()):
                break
        else:
            print(f"{model.name}: no int8 TFLite artifact of it and of {model.parent}; skipped")
            continue
        files = {f"{name} {precision}": args.artifacts_from / a.path for name, a in pair.items()}
        print(f"{model.name}: timing {', '.join(files)} ({args.rounds} rounds, alternating)", flush=True)
        p50, result = alternating_p50(files, args.rounds, args.threads, args.warmup, args.runs)
        unpruned, pruned = p50.values()
        speedups = [u / p for u, p in zip(unpruned, pruned)]
        here, recorded = statistics.median(speedups), model.compression.achieved_speedup
        everything[model.name] = {"speedup_per_round": speedups, "speedup": here, "build_recorded": recorded,
                                  "asked": model.compression.speedup, "predicted": model.compression.predicted_speedup}
        line = f"{model.name}: speed-up here {here:.2f}x (per round: {', '.join(f'{s:.2f}' for s in speedups)})"
        if recorded:
            line += f"; the build recorded {recorded:.2f}x ({100 * (recorded / here - 1):+.1f} %)"
        if model.compression.speedup:
            line += f"; asked {model.compression.speedup:g}x, the table predicted {model.compression.predicted_speedup:.2f}x"
        print(line, flush=True)
    if result:
        print("\n" + machine_line(result, args.threads))
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1))


if __name__ == "__main__":
    main()
