import pytest

from pipeline.report import schema
from pipeline.report.metrics import fixed, pareto_front


def test_pareto_front_keeps_only_points_nothing_beats():
    # (latency, accuracy): b is slower and less accurate than a; d ties a on latency with less accuracy.
    points = [(1.0, 90.0), (2.0, 85.0), (0.5, 80.0), (1.0, 89.0), (3.0, 95.0)]
    assert pareto_front(points) == [2, 0, 4]  # sorted by latency


def test_pareto_front_of_equal_points_keeps_both():
    assert pareto_front([(1.0, 90.0), (1.0, 90.0)]) == [0, 1]


def test_fixed_keeps_three_significant_digits_for_tiny_values():
    assert [fixed(v) for v in (0.0, 0.002134, 0.05, 0.5, 12.3456)] == ["0.000", "0.00213", "0.0500", "0.500", "12.346"]


def test_a_speedup_variant_gets_its_asked_predicted_achieved_table_and_where_the_time_goes():
    from pipeline.report import compression_plots, markdown, tables
    from tests.report import fakes

    artifacts = [fakes.artifact("int8-ptq", 1.0, 0.0, [fakes.bench(p50=2.0)], model="m"),
                 fakes.artifact("int8-ptq", 0.6, 0.5, [fakes.bench(p50=1.25), fakes.bench(p50=0.9, threads=2)], model="m-p1.6x")]
    layers = {f"layer_{i}": 0.1 * (i + 1) for i in range(15)}
    table = schema.LatencyTableSummary(
        target="host", identity={"cpu": {"model": "test cpu"}}, threads=1, entries=100, timed=40, reused=60, unpruned_ms=2.0,
        half_ms=0.9, spread=0.03, entry_spread_median=0.02, cache_file="/tmp/x.json", predicted_unpruned_ms=12.5, rest_ms=0.5,
        layers_ms=layers)
    variant = fakes.model("m-p1.6x").model_copy(update={"parent": "m", "compression": schema.Compression(
        method="l1-filter", speedup=1.6, latency_on="host", predicted_speedup=1.7, achieved_speedup=1.6, latency_table=table)})
    report = fakes.report(artifacts, [fakes.model("m"), variant])
    asked, where = tables.speedup_tables(report, "m-p1.6x")
    assert asked.rows == [["1.60x", "1.70x", "1.60x", "100 (40)", f"{tables.ms(2.0)} / {tables.ms(12.5)}", "3.0"]]
    assert [row[0] for row in where.rows[:2]] == ["layer_14", "layer_13"]  # the slowest first
    assert where.rows[-2][0] == "3 other conv/depthwise/dense layers" and where.rows[-1][1] == tables.ms(0.5)
    assert tables.speedup_tables(report, "m") == []  # no speed-up asked
    assert "m-p1.6x: speed-up asked on host" in markdown.render(report)
    [plot] = compression_plots.time_per_layer(report)  # unpruned bars, and the pruned ones where the table has them
    assert plot.key == "time-per-layer-m-p1.6x" and plot.png_data_uri.startswith("data:image/png;base64,")
    pruned = variant.model_copy(update={"compression": variant.compression.model_copy(update={
        "latency_table": table.model_copy(update={"pruned_layers_ms": {name: ms / 2 for name, ms in layers.items()}})})})
    assert compression_plots.time_per_layer(fakes.report(artifacts, [fakes.model("m"), pruned]))[0].png_data_uri != plot.png_data_uri
