"""Latency tables (pipeline/compress/layer_latency.py, stages/prune_choice.py, targets/table_runner.py) and
the chooser that prunes to a speed-up by them (sensitivity.choose_speedup), on tiny models."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from pipeline.compress import filter_pruning, layer_latency, sensitivity
from pipeline.errors import UserInputError
from tests.compress.tiny import pointwise_model


@pytest.fixture(scope="module")
def graph():
    return filter_pruning.read_graph(pointwise_model(size=32))


def test_grid_times_each_layer_at_the_channels_its_groups_can_keep(graph):
    grids = {g.layer: g for g in layer_latency.grids(graph)}
    assert list(grids) == list(graph.cost)  # every conv, depthwise and dense layer, in graph order
    stem, depthwise, *pointwise, dense = grids.values()
    assert stem.base.kind == "conv" and stem.base.in_size == (34, 34) and stem.base.strides == (2, 2)
    assert stem.cins == (3,) and stem.couts == (1, 2, 4, 6, 8)  # the image's channels never go; GRID's shares of 8
    assert depthwise.base.kind == "depthwise" and depthwise.cins == stem.couts
    assert [s.key for s in depthwise.shapes()][-1] == "depthwise 16x16 k3x3 s1x1 same 8->8"
    assert pointwise[0].cins == (1, 2, 4, 6, 8) and pointwise[0].couts == (3, 10, 16, 24, 32)
    assert len(pointwise[0].shapes()) == 25
    assert dense.base.in_size == () and dense.couts == (3,)  # the classes stay


def test_the_table_interpolates_and_fits_the_rest_through_the_two_whole_models(graph):
    def work(cin, cout):  # a layer's time inside the model: it grows with the work
        return 0.001 * cin * cout

    call = 0.01  # what every one-layer model pays on top, as any invoke does: taken off each entry
    entries = {s.key: work(s.cin, s.cout) + call for g in layer_latency.grids(graph) for s in g.shapes()}
    entries[layer_latency.CALL.key] = call
    half = layer_latency.half_keep(graph)

    def layers(keep):
        return sum(work(*graph.channels(name, keep if keep is not None else np.ones(graph.atoms, bool))) for name in graph.cost)

    def rest(keep):  # 0.05 ms plus 1e-6 ms per activation element
        return 0.05 + 1e-6 * graph.traffic(keep)

    table = layer_latency.LatencyTable.fit(graph, entries, {"unpruned": layers(None) + rest(None), "half": layers(half) + rest(half)})
    assert table.rest_ms == pytest.approx(0.05) and table.rest_ms_per_element == pytest.approx(1e-6)
    assert table.predict(graph) == pytest.approx(layers(None) + rest(None))
    assert table.predict(graph, half) == pytest.approx(layers(half) + rest(half))
    # Between grid points (1x1 conv 8->32 at 5 and 20 channels: between its (4|6, 16|24) entries), bilinear
    # interpolation is exact for a time bilinear in the channels.
    conv = [name for name, cost in graph.cost.items() if cost[0] == "conv"][1]
    assert table.layer_ms(conv, 5, 20) == pytest.approx(work(5, 20))
    assert table.layer_ms(conv, 8, 32) == pytest.approx(work(8, 32))


def test_the_chooser_meets_a_synthetic_tables_speedup_at_least_accuracy(graph):
    curves = {"baseline_top1": 0.9, "groups": [
        {"group": g.name, "points": [{"ratio": r, "top1": 0.9 - (0.5 if i == 0 else 0.01) * r} for r in sensitivity.RATIOS]}
        for i, g in enumerate(graph.groups)]}

    def latency(keep):  # MACs as milliseconds: a table in which every MAC costs the same
        return graph.macs(keep) / 1e6

    ratios = sensitivity.choose_speedup(graph, curves, 1.5, latency, "host")
    kept = graph.keep_mask(ratios)
    assert latency(None) / latency(kept) >= 1.5
    assert ratios.get(graph.groups[0].name, 0) < max(ratios.values())  # the sensitive group pruned least
    with pytest.raises(UserInputError, match=r"--prune-speedup 1000: unreachable on host; .* gives [\d.]+x by its latency table"):
        sensitivity.choose_speedup(graph, curves, 1000, latency, "host")


def test_table_runner_times_every_model_in_rounds_and_rejects_a_bad_file(tmp_path):
    from converters import tflite
    from pipeline.targets.host import TABLE_RUNNER, run_table

    models = {}
    for i, cout in enumerate((8, 32)):
        model = layer_latency.one_layer_model(layer_latency.LayerShape("conv", (16, 16), (1, 1), (1, 1), "valid", 8, cout))
        calibration = np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 8)).astype(np.float32)
        models[f"m{i}"] = np.frombuffer(tflite.convert(model, "int8-ptq", calibration), np.uint8)
    np.savez(tmp_path / "models.npz", **models)
    result = run_table(tmp_path / "models.npz", threads=1, warmup=1, runs=3, rounds=2)
    assert set(result["rounds_ms"]) == {"m0", "m1"} and all(len(r) == 2 and min(r) > 0 for r in result["rounds_ms"].values())
    assert result["delegates"] == ["xnnpack"] and result["cpu"]["machine"]
    (tmp_path / "bad.npz").write_text("not an archive")
    proc = subprocess.run([sys.executable, str(TABLE_RUNNER), str(tmp_path / "bad.npz"), "--threads", "1", "--warmup", "0",
                           "--runs", "1", "--rounds", "1"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1
    assert "bad.npz" in proc.stderr


def _run_stage(model_file, folder, target="host", ssh=None, identity="test-host"):
    """The latency table of the model in `model_file`, as stages/prune_choice.py measures it: its summary."""
    from pipeline.stages.prune_choice import PruneChoiceConfig, measure
    from pipeline.tf_import import keras

    folder.mkdir()
    config = PruneChoiceConfig(speedup=1.5, target=target, target_identity=identity, warmup=1, runs=3, rounds=2, ssh=ssh)
    table, summary = measure(filter_pruning.read_graph(keras().models.load_model(model_file)), config, folder)
    (folder / "table.json").write_text(json.dumps(table.__dict__))
    return summary


@pytest.mark.slow
def test_a_table_is_timed_once_and_a_second_build_reuses_the_cache(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("DEPLOY_LATENCY_CACHE", str(tmp_path / "cache"))
    pointwise_model(size=16).save(tmp_path / "model.keras")
    first = _run_stage(tmp_path / "model.keras", tmp_path / "first")
    assert first["timed"] == first["entries"] > 40 and first["reused"] == 0
    table = json.loads((tmp_path / "first" / "table.json").read_text())
    assert set(table["layers"]) == set(first["layers_ms"]) and first["unpruned_ms"] > 0
    assert first["identity"]["runtime"].startswith("ai-edge-litert") and first["identity"]["delegates"] == ["xnnpack"]
    second = _run_stage(tmp_path / "model.keras", tmp_path / "second")
    assert second["timed"] == 0 and second["reused"] == first["entries"]
    assert (tmp_path / "second" / "table.json").read_text() == (tmp_path / "first" / "table.json").read_text()
    # Another model, and the target now reports another CPU than the cache holds: nothing cached is trusted.
    [cache_file] = (tmp_path / "cache").glob("*.json")
    cached = json.loads(cache_file.read_text())
    cached["identity"]["cpu"]["model"] = "another CPU"
    cache_file.write_text(json.dumps(cached))
    pointwise_model(size=20).save(tmp_path / "other.keras")
    third = _run_stage(tmp_path / "other.keras", tmp_path / "third")
    assert third["timed"] == third["entries"] and "measuring every entry anew" in caplog.text
    assert len(json.loads(cache_file.read_text())["entries"]) == third["entries"]  # the old CPU's entries are gone


@pytest.mark.slow
def test_an_ssh_boards_table_is_measured_on_the_board(sshd, tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOY_LATENCY_CACHE", str(tmp_path / "cache"))
    target, options = sshd
    pointwise_model(size=16).save(tmp_path / "model.keras")
    result = _run_stage(tmp_path / "model.keras", tmp_path / "board", target=target.name, ssh=options, identity=target.name)
    assert result["target"] == target.name and result["timed"] == result["entries"] and result["unpruned_ms"] > 0
    assert result["identity"]["cpu"]["count"] >= 1
    [cache_file] = (tmp_path / "cache").glob("*.json")  # the board's own cache file, not the host's
    assert json.loads(cache_file.read_text())["identity"] == result["identity"]


def test_the_search_finds_the_least_pruned_step_that_measures_the_speedup():
    from pipeline.stages.prune_choice import _search

    path = [({}, 1.0 + 0.1 * k) for k in range(1, 20)]  # the table's speed-up per step: 1.1, 1.2, ... 2.9
    timed = []

    def check(i, true=lambda predicted: 0.8 * predicted):  # the table is 25 % optimistic
        timed.append(i)
        return true(path[i][1])

    chosen = _search(path, 1.6, check, budget=6)
    assert path[chosen][1] == pytest.approx(2.0)  # measures 1.60x; step 1.9 measures 1.52x
    assert timed[0] == 5 and len(timed) <= 6  # first the step the table says reaches 1.6x
    # A measured curve flat, then a jump (the shortfall alone would land far beyond): bisection comes back.
    timed.clear()
    chosen = _search(path, 1.6, lambda i: check(i, true=lambda p: 1.5 if p < 2.2 else p - 0.55), budget=6)
    assert path[chosen][1] == pytest.approx(2.2) and len(timed) <= 6
    # Nothing measured reaches it within the checks: the fastest measured.
    timed.clear()
    chosen = _search(path, 1.6, lambda i: check(i, true=lambda p: 1.0 + 0.01 * p), budget=3)
    assert len(timed) == 3 and chosen == max(timed)
