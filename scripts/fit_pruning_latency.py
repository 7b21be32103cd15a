"""Fit the filter-pruning chooser's latency estimate (MEMORY_WEIGHT in pipeline/compress/sensitivity.py).

For one family (MobileNet V2 by default) at 224x224, 1000 classes, random weights built in code: the
int8 model unpruned, and with each group pruned alone at --ratio. All are loaded in one process
(LiteRT, XNNPACK, 1 thread) and timed in alternating blocks of --runs invokes, the median of each
block kept, then the median over --blocks. One process, not one per measurement as the benchmark
scripts do: a group pruned alone saves 1-9 % of the time, and fresh processes differ by more than
that from each other on a shared machine (tried: 3 rounds of fresh processes gave 11 of MobileNet V2's
25 groups a negative saving). The latency each group saves is then fitted, by least squares without an
intercept, to the MACs it saves and the activation elements its conv and dense layers no longer read
or write (`ChannelGraph.traffic`). Prints every group's figures, both coefficients, their ratio (the
MAC-equivalents an element costs) and how much better both terms fit than MACs alone.

    .venv/bin/python scripts/fit_pruning_latency.py [--model mobilenet_v2] [--ratio 0.9] [--blocks 30]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build_files(folder: Path, name: str, size: int, ratio: float) -> tuple[dict[str, Path], dict[str, tuple[int, int]]]:
    """The int8 files (unpruned, then one per group) and each group's (MACs, elements) saved."""
    from converters import tflite
    from pipeline.compress import filter_pruning
    from pipeline.models.architectures import build

    model = build(name, size, 1000)
    graph = filter_pruning.read_graph(model)
    calibration = np.random.default_rng(0).uniform(-1, 1, (8, size, size, 3)).astype(np.float32)
    files = {"unpruned": tflite.write(tflite.convert(model, "int8-ptq", calibration), folder / "unpruned.tflite")}
    saved = {}
    for group in graph.groups:
        keep = graph.keep_mask({group.name: ratio})
        if keep.all():
            continue  # a group of one unit: nothing to remove
        saved[group.name] = (graph.macs() - graph.macs(keep), graph.traffic() - graph.traffic(keep))
        pruned = filter_pruning.prune(graph, keep)
        files[group.name] = tflite.write(tflite.convert(pruned, "int8-ptq", calibration), folder / f"{group.name}.tflite")
        print(f"  {group.name}: converted", flush=True)
    return files, saved


def alternating_medians(files: dict[str, Path], threads: int, warmup: int, runs: int, blocks: int) -> dict[str, float]:
    """Per file, the median over `blocks` of the median of `runs` invokes, the files alternating block by block."""
    from ai_edge_litert.interpreter import Interpreter

    interpreters = {}
    for name, path in files.items():
        interpreter = Interpreter(str(path), num_threads=threads)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
        for _ in range(warmup):
            interpreter.invoke()
        interpreters[name] = interpreter
    medians: dict[str, list[float]] = {name: [] for name in files}
    for block in range(blocks):
        for name, interpreter in interpreters.items():
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                interpreter.invoke()
                times.append(time.perf_counter() - start)
            medians[name].append(statistics.median(times) * 1e3)
        if (block + 1) % 10 == 0:
            print(f"  block {block + 1}/{blocks}, load {os.getloadavg()[0]:.2f}", flush=True)
    return {name: statistics.median(values) for name, values in medians.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--ratio", type=float, default=0.9, help="large: the savings stand out of the noise")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--blocks", type=int, default=30)
    args = parser.parse_args()

    print(f"load before: {os.getloadavg()[0]:.2f} (1-min average)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{args.model}: each group pruned alone at {args.ratio:g}, int8, {args.size}x{args.size} ...", flush=True)
        files, saved = build_files(Path(tmp), args.model, args.size, args.ratio)
        latency = alternating_medians(files, args.threads, args.warmup, args.runs, args.blocks)
    base = latency["unpruned"]
    names = list(saved)
    x = np.array([[saved[n][0] / 1e6, saved[n][1] / 1e6] for n in names])  # million MACs, million elements
    y = np.array([base - latency[n] for n in names])  # ms saved
    both, *_ = np.linalg.lstsq(x, y, rcond=None)
    macs_only, *_ = np.linalg.lstsq(x[:, :1], y, rcond=None)
    print(f"\nunpruned int8 p50 {base:.3f} ms")
    print(f"{'group':<34} {'MMACs saved':>11} {'M elements':>10} {'ms saved':>8} {'fit':>6}")
    for name, row, ms in zip(names, x, y):
        print(f"{name:<34} {row[0]:11.2f} {row[1]:10.3f} {ms:8.3f} {row @ both:6.3f}")
    rms = lambda fit: float(np.sqrt(np.mean(fit ** 2)))  # noqa: E731
    print(f"\nfit: {both[0]:.5f} ms per million MACs + {both[1]:.4f} ms per million elements; "
          f"MEMORY_WEIGHT = {both[1] / both[0]:.1f} MAC-equivalents per element")
    print(f"residual (rms): {rms(x @ both - y):.4f} ms with both terms, {rms(x[:, :1] @ macs_only - y):.4f} ms "
          f"with MACs alone; spread of the savings {float(np.std(y)):.4f} ms")
    print(f"CPU: {platform.machine()}, {os.cpu_count()} cores; LiteRT XNNPACK, {args.threads} thread(s); "
          f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
