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
