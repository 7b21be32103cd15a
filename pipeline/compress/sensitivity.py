"""Sensitivity analysis (Li et al. 2017, Figure 2) and the per-group ratios chosen from it.

Each group is pruned alone at each ratio (through `filter_pruning.mask_weights`, which computes
what the pruned model would, without rebuilding it) and top-1 is measured without fine-tuning on
images held out of the training split (never the validation split the report scores).

Choosing the ratios, greedily: start with nothing pruned; while the model's MACs are above the
target, take the one step (one group to its next ratio) that costs the least top-1 per unit of
latency saved, the cost read from that group's curve (groups assumed independent, as in the paper).
A step that loses nothing is taken first, the biggest saving first among those.

With --prune-keep-macs, latency is estimated (a group pruned alone changes an int8 model's time by a
few per cent, below the noise of a shared machine): MACs plus MEMORY_WEIGHT MAC-equivalents per
activation element a conv or dense layer reads or writes (`ChannelGraph.traffic`). MACs alone
miss what depthwise convolutions and large early maps cost: at 50 % of MobileNet V2's MACs (int8,
224x224), every group at one ratio ran 1.36x faster than unpruned, the expansion groups alone 1.70x.
With --prune-speedup, latency is what a table measured on the device predicts (layer_latency.py),
and the walk stops at the asked speed-up instead of a MAC budget (`choose_speedup`).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pipeline.compress.filter_pruning import ChannelGraph, mask_weights, restore
from pipeline.errors import UserInputError
from pipeline.progress import Progress

RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
FREE = 1e-4  # top-1 "lost" by a step that loses nothing, so that savings still rank such steps
# MAC-equivalents per activation element read or written: the ratio of the two costs fitted by
# scripts/fit_pruning_latency.py (int8 MobileNet V2 at 224x224, each group pruned alone, LiteRT
# XNNPACK, 1 thread, x86-64): 17.7 with groups at 0.9 (0.0056 ms per million MACs, 0.099 ms per
# million elements; rms residual 0.039 ms, 0.076 with MACs alone); at 0.5, 19.0 and, on a noisier
# machine whose fit hardly beat MACs alone, 13.8; 14.4 on an AMD EPYC; 89.7 on a Xeon with AMX, where
# a MAC is nearly free (docs/compression.md). It depends on the device's kernels: a host's figure.
MEMORY_WEIGHT = 19


def latency_estimate(graph: ChannelGraph, keep: np.ndarray | None = None) -> float:
    """The model's estimated latency pruned to `keep`, in MAC-equivalents (module docstring)."""
    return graph.macs(keep) + MEMORY_WEIGHT * graph.traffic(keep)


def curves(graph: ChannelGraph, top1: Callable[[], float], ratios=RATIOS) -> dict:
    """{"baseline_top1", "groups": [{"group", "producers", "units", "points": [{"ratio", "units_removed", "top1", "macs"}]}]}."""
    baseline = top1()
    total = graph.macs()
    groups = []
    progress = Progress("sensitivity", len(graph.groups) * len(ratios), unit="measurements", every_s=30.0)
    for group in graph.groups:
        points = []
        for ratio in ratios:
            keep = graph.keep_mask({group.name: ratio})
            saved = mask_weights(graph, keep)
            try:
                accuracy = top1()
            finally:
                restore(saved)
            progress.add(1)
            points.append({"ratio": ratio, "units_removed": group.removed(ratio), "top1": accuracy,
                           "macs_kept": graph.macs(keep) / total})
        groups.append({"group": group.name, "producers": group.producers, "units": len(group.units), "points": points})
    return {"baseline_top1": baseline, "groups": groups}


def choose(graph: ChannelGraph, measured: dict, keep_macs: float) -> dict[str, float]:
    """Per-group ratios whose pruned model keeps at most `keep_macs` of the MACs (greedy, above)."""
    total = graph.macs()

    def unreachable(macs: int, _latency: float) -> str:
        return f"--prune-keep-macs {keep_macs:g}: unreachable; pruning every group at {max(RATIOS):g} keeps {macs / total:.2f} of the MACs"

    return _greedy(graph, measured, lambda keep: latency_estimate(graph, keep), lambda macs, _: macs <= keep_macs * total,
                   unreachable)


def choose_speedup(graph: ChannelGraph, measured: dict, speedup: float, latency_ms: Callable[[np.ndarray | None], float],
                   target: str) -> dict[str, float]:
    """Per-group ratios whose pruned model's latency, as `latency_ms(keep)` predicts it from a table
    measured on `target` (layer_latency.LatencyTable.predict), is at most the unpruned one's / speedup."""
    unpruned = latency_ms(None)

    def unreachable(_macs: int, latency: float) -> str:
        return (f"--prune-speedup {speedup:g}: unreachable on {target}; pruning every group at {max(RATIOS):g} gives "
                f"{unpruned / latency:.2f}x by its latency table")

    return _greedy(graph, measured, latency_ms, lambda _, latency: latency <= unpruned / speedup, unreachable)


def _greedy(graph: ChannelGraph, measured: dict, latency_of: Callable[[np.ndarray | None], float],
            reached: Callable[[int, float], bool], unreachable: Callable[[int, float], str]) -> dict[str, float]:
    """The walk's first ratios that satisfy `reached(macs, latency)`."""
    macs, latency = graph.macs(), latency_of(None)
    if reached(macs, latency):
        return {}
    for ratios, macs, latency in walk(graph, measured, latency_of):
        if reached(macs, latency):
            return ratios
    raise UserInputError(unreachable(macs, latency))


def walk(graph: ChannelGraph, measured: dict, latency_of: Callable[[np.ndarray | None], float]):
    """The module docstring's greedy walk, latency by `latency_of(keep)`: yields (ratios, MACs, latency)
    after each step, until every group is at its last ratio."""
    top1 = {g["group"]: {0.0: measured["baseline_top1"], **{p["ratio"]: p["top1"] for p in g["points"]}}
            for g in measured["groups"]}
    steps = {name: sorted(curve) for name, curve in top1.items()}
    chosen = {name: 0.0 for name in top1}
    macs, latency = graph.macs(), latency_of(None)
    while True:
        options, moved = [], False
        for name, ratio in list(chosen.items()):
            later = [r for r in steps[name] if r > ratio]
            if not later:
                continue
            keep = graph.keep_mask({**chosen, name: later[0]})
            trial_macs = graph.macs(keep)
            if trial_macs >= macs:  # the step removes no unit (rounding): the group's next ratio is the real step
                chosen[name], moved = later[0], True
                continue
            trial_latency = latency_of(keep)
            # An estimate falls with every step; a measured table may say a step saves nothing: it ranks last.
            saved = max(latency - trial_latency, 1e-12)
            cost = max(top1[name][ratio] - top1[name][later[0]], 0.0) + FREE
            options.append((cost / saved, name, later[0], trial_macs, trial_latency))
        if options:
            _, name, ratio, macs, latency = min(options)
            chosen[name] = ratio
            yield {n: r for n, r in chosen.items() if r > 0}, macs, latency
        elif not moved:
            return
