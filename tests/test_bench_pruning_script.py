"""scripts/bench_pruning.py's --latency-only ratios (the least estimated latency at the MAC budget,
accuracy ignored) and --speedup ratios (by a latency table timed here); the timing of the files
themselves is the script's job, not a test's."""
import pytest

from pipeline.compress import filter_pruning
from pipeline.compress.sensitivity import latency_estimate
from pipeline.models.architectures import build
from tests.conftest import load_script


@pytest.fixture(scope="module")
def bench_pruning():
    return load_script("bench_pruning")


@pytest.mark.parametrize("family", ["mobilenet_v2", "shufflenet_v2"])
def test_latency_only_ratios_reach_the_budget_with_less_estimated_latency_than_uniform(bench_pruning, family):
    graph = filter_pruning.read_graph(build(family, 32, 10))
    keep = graph.keep_mask(bench_pruning.latency_only_ratios(graph, 0.5))
    uniform = graph.keep_mask(bench_pruning.uniform_ratios(graph, 0.5))
    assert graph.macs(keep) <= 0.5 * graph.macs()
    assert latency_estimate(graph, keep) < 0.9 * latency_estimate(graph, uniform)


@pytest.mark.slow
def test_speedup_ratios_are_chosen_by_a_table_timed_here(bench_pruning, tmp_path, monkeypatch):
    from pipeline.compress import filter_pruning
    from tests.compress.tiny import pointwise_model

    monkeypatch.setenv("DEPLOY_LATENCY_CACHE", str(tmp_path / "cache"))
    graph = filter_pruning.read_graph(pointwise_model(size=64, width=128))
    ratios, predicted = bench_pruning.speedup_ratios(graph, None, 1.2, 1, tmp_path)
    assert ratios and predicted >= 1.2
    assert list((tmp_path / "cache").glob("*.json"))  # the builds' latency cache, shared
