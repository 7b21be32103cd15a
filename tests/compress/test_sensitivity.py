"""Sensitivity curves and the greedy choice of per-group ratios, on a toy graph."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import UserInputError
from tests.compress.test_filter_pruning import _toy


def _measured(graph, drops: dict[str, float]):
    """Synthetic curves: top-1 falls linearly with the ratio, at `drops[group]` per unit of ratio."""
    from pipeline.compress.sensitivity import RATIOS

    return {"baseline_top1": 0.9, "groups": [
        {"group": g.name, "producers": g.producers, "units": len(g.units),
         "points": [{"ratio": r, "top1": 0.9 - drops[g.name] * r} for r in RATIOS]} for g in graph.groups]}


def test_greedy_prunes_the_insensitive_group_first_and_reaches_the_target():
    from pipeline.compress import filter_pruning as fp
    from pipeline.compress.sensitivity import choose

    graph = fp.read_graph(_toy("Concatenate"))
    total = graph.macs()
    ratios = choose(graph, _measured(graph, {"a": 0.0, "b": 0.8, "c": 0.8}), keep_macs=0.7)
    assert graph.macs(graph.keep_mask(ratios)) <= 0.7 * total
    assert ratios["a"] > 0 and ratios.get("b", 0) <= ratios["a"]
    # Flip the sensitivities: the other way round.
    flipped = choose(graph, _measured(graph, {"a": 0.8, "b": 0.0, "c": 0.0}), keep_macs=0.7)
    assert flipped.get("a", 0) < ratios["a"]


def _two_branches():
    """Branch p: a 1x1 conv on the 16x16 map and a depthwise conv after it (few MACs per filter, large
    maps); branch q: a 3x3 conv on an 8x8 map (more MACs per filter, small maps)."""
    from pipeline.tf_import import keras

    k = keras()
    inputs = k.Input((16, 16, 16))
    p = k.layers.DepthwiseConv2D(3, padding="same", name="p_dw")(k.layers.Conv2D(8, 1, name="p")(inputs))
    q = k.layers.Conv2D(8, 3, padding="same", name="q")(k.layers.AveragePooling2D(2, name="q_pool")(inputs))
    pooled = [k.layers.GlobalAveragePooling2D(name=f"{n}_gap")(t) for n, t in (("p", p), ("q", q))]
    outputs = k.layers.Dense(3, activation="softmax", name="out")(k.layers.Concatenate(name="cat")(pooled))
    return k.Model(inputs, outputs)


def test_greedy_prefers_what_saves_latency_not_only_macs(monkeypatch):
    from pipeline.compress import filter_pruning as fp
    from pipeline.compress import sensitivity

    graph = fp.read_graph(_two_branches())
    # Elements read + written: p 256*16 + 256*8, p_dw 256*8 + 256*8, q 64*16 + 64*8, out 16 + 3.
    assert graph.traffic() == 6144 + 4096 + 1536 + 19
    flat = _measured(graph, {g.name: 0.0 for g in graph.groups})  # accuracy cannot decide
    one_filter = {name: graph.keep_mask({name: 0.125}) for name in ("p", "q")}
    saved = {name: graph.macs() - graph.macs(keep) for name, keep in one_filter.items()}
    assert saved["q"] > saved["p"]  # per filter, q saves more MACs
    assert graph.traffic() - graph.traffic(one_filter["p"]) > 10 * (graph.traffic() - graph.traffic(one_filter["q"]))
    ratios = sensitivity.choose(graph, flat, keep_macs=0.9)
    assert ratios.get("p", 0) > 0 and ratios.get("q", 0) == 0
    assert graph.macs(graph.keep_mask(ratios)) <= 0.9 * graph.macs()
    monkeypatch.setattr(sensitivity, "MEMORY_WEIGHT", 0)  # MACs alone: the other way round
    by_macs = sensitivity.choose(graph, flat, keep_macs=0.9)
    assert by_macs.get("q", 0) > 0 and by_macs.get("p", 0) == 0


def test_unreachable_target_is_a_user_error():
    from pipeline.compress import filter_pruning as fp
    from pipeline.compress.sensitivity import choose

    graph = fp.read_graph(_toy("Add"))
    with pytest.raises(UserInputError, match="--prune-keep-macs 0.01: unreachable"):
        choose(graph, _measured(graph, {g.name: 0.1 for g in graph.groups}), keep_macs=0.01)


def test_curves_measure_each_group_alone_and_restore_the_weights():
    from pipeline.compress import filter_pruning as fp
    from pipeline.compress.sensitivity import curves

    model = _toy("Add")
    graph = fp.read_graph(model)
    x = np.random.default_rng(0).normal(size=(8, 8, 8, 3)).astype("float32")
    reference = model(x).numpy()
    seen = []

    def top1():
        seen.append(model(x).numpy())
        return float(np.mean(seen[-1].argmax(1) == reference.argmax(1)))

    measured = curves(graph, top1)
    assert measured["baseline_top1"] == 1.0
    assert [len(g["points"]) for g in measured["groups"]] == [9] * len(graph.groups)
    assert any(np.abs(s - reference).max() > 1e-4 for s in seen[1:])  # the measurements saw pruned models
    np.testing.assert_array_equal(model(x).numpy(), reference)  # and the model is whole again
    kept = [p["macs_kept"] for p in measured["groups"][0]["points"]]
    assert kept == sorted(kept, reverse=True) and kept[-1] < 1
