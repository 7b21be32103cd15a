"""`deploy build --prune l1-filter --distill` end to end on the tiny user model: the pruned variant
is its own model in the report, its artifacts carry the recipe, the recommendation weighs them all."""
from __future__ import annotations

import pytest

from pipeline.config import load_config

FAST = {"qat_epochs": 1, "calibration_images": 12, "warmup": 1, "runs": 3, "threads": [1], "val_fraction": 0.25,
        "formats": ["tflite"], "precisions": ["fp32", "int8-qat"], "prune": "l1-filter", "prune_keep_macs": 0.5,
        "prune_epochs": 2, "distill": True}


@pytest.mark.slow
def test_pruned_variant_is_reported_beside_its_model(trained_model_file, image_folder, tmp_path):
    from pipeline.build import build

    out = tmp_path / "out"
    report = build(load_config(overrides={"models": [str(trained_model_file)], "data": str(image_folder), "out": out, **FAST}))
    parent, variant = report.models
    assert (parent.name, variant.name, variant.parent) == ("tiny", "tiny-p50", "tiny")
    assert variant.macs <= 0.5 * parent.macs and variant.params < parent.params
    recipe = variant.compression
    assert recipe.method == "l1-filter" and recipe.keep_macs == 0.5 and recipe.distilled
    assert recipe.macs_kept == pytest.approx(variant.macs / parent.macs)
    assert recipe.group_ratios and all(0 < r < 1 for r in recipe.group_ratios.values())
    sensitivity = variant.pruning_sensitivity
    assert "training images" in sensitivity.measured_on and sensitivity.images > 0  # too few here to hold any out
    assert [len(g.points) for g in sensitivity.groups] == [9] * len(sensitivity.groups)
    assert parent.pruning_sensitivity is None and parent.compression is None
    by_model = {(a.model, a.precision): a for a in report.artifacts}
    assert set(by_model) == {("tiny", "fp32"), ("tiny", "int8-qat"), ("tiny-p50", "fp32"), ("tiny-p50", "int8-qat")}
    for precision in ("fp32", "int8-qat"):
        a = by_model["tiny-p50", precision]
        assert a.compression.method == "l1-filter" and a.compression.distilled
        assert "tiny-p50" in a.path and (out / a.path).exists()
        # Drops are measured from the unpruned model's float top-1.
        assert a.accuracy_drop_points == pytest.approx(100 * (parent.float_accuracy.top1 - a.accuracy.top1), abs=1e-3)
    assert by_model["tiny", "int8-qat"].compression.qat_distilled and by_model["tiny-p50", "int8-qat"].compression.qat_distilled
    assert by_model["tiny", "fp32"].compression is None
    [recommendation] = report.recommendations  # one for the model and its variant together
    assert recommendation.model == "tiny"
    html = (out / "report.html").read_text()
    assert "Pruning sensitivity of tiny" in html and "Accuracy against MACs" in html


@pytest.mark.parametrize("targets, latency_on, message", [
    ("host,arm64-emu", "arm64-emu", "--latency-on arm64-emu: an emulator's timing means nothing"),
    ("host", "ssh:pi@board.local", "--latency-on ssh:pi@board.local: not one of --targets (host)"),
])
def test_a_speedup_is_measured_on_a_real_target_of_the_build(tmp_path, targets, latency_on, message):
    from tests.test_cli import assert_one_line_error, deploy

    result = deploy("build", "--model", "mobilenet_v1", "--data", "demo", "--prune", "l1-filter", "--prune-speedup", "1.5",
                    "--targets", targets, "--latency-on", latency_on, "--dry-run", "--out", tmp_path / "out")
    assert_one_line_error(result, 2, message)


def test_ratios_from_a_report_without_a_pruned_variant_of_the_model_are_refused(tmp_path):
    from tests.test_cli import assert_one_line_error, deploy

    missing = deploy("build", "--model", "mobilenet_v1", "--data", "demo", "--prune", "l1-filter", "--prune-ratios-from",
                     tmp_path / "nothing.json", "--dry-run", "--out", tmp_path / "out")
    assert_one_line_error(missing, 2, f"--prune-ratios-from {tmp_path / 'nothing.json'}: not a readable report.json")
    from tests.report import fakes

    (tmp_path / "report.json").write_text(fakes.report([fakes.artifact("fp32", 1.0, 0.0, [fakes.bench()])]).model_dump_json())
    other = deploy("build", "--model", "mobilenet_v1", "--data", "demo", "--prune", "l1-filter", "--prune-ratios-from",
                   tmp_path / "report.json", "--dry-run", "--out", tmp_path / "out")
    assert_one_line_error(other, 2, "no filter-pruned variant of mobilenet_v1 in it (models: m)")


@pytest.mark.slow
def test_a_speedup_variant_is_chosen_by_the_hosts_latency_table_and_its_speedup_measured(image_folder, tmp_path, monkeypatch):
    """A 1x1-conv model at 96x96, 128 filters wide (untrained: the choice needs the table, not accuracy; int8 without float
    fallback, which an untrained model would trigger), pruned to 1.3x on the host."""
    from pipeline.build import build
    from tests.compress.tiny import pointwise_model

    monkeypatch.setenv("DEPLOY_LATENCY_CACHE", str(tmp_path / "latency-cache"))
    path = tmp_path / "pointwise.keras"
    pointwise_model(size=96, width=128).save(path)
    settings = {**FAST, "models": [str(path)], "data": str(image_folder), "precisions": ["fp32", "int8-ptq"], "int8_fallback": "off",
                "prune_speedup": 1.3, "distill": False, "prune_epochs": 1, "mean": [127.5], "std": [127.5], "warmup": 5, "runs": 30}
    report = build(load_config(overrides={**settings, "out": tmp_path / "first"}))
    parent, variant = report.models
    assert variant.name == "pointwise-p1.3x" and variant.macs < parent.macs
    recipe = variant.compression
    assert (recipe.speedup, recipe.latency_on, recipe.keep_macs) == (1.3, "host", None)
    table = recipe.latency_table
    assert table.target == "host" and table.timed == table.entries > 0
    assert len(table.layers_ms) == 5  # 3 convs, the depthwise, the dense (which costs no more than an empty call)
    assert sum(ms > 0 for ms in table.layers_ms.values()) >= 4  # names depend on what Keras built before
    assert table.pruned_layers_ms.keys() == table.layers_ms.keys()  # the chosen pruning, layer by layer
    assert sum(table.pruned_layers_ms.values()) < sum(table.layers_ms.values())
    assert any(check.predicted == pytest.approx(recipe.predicted_speedup) for check in recipe.speedup_checks)  # the chosen step was timed
    assert all(check.measured > 0 for check in recipe.speedup_checks)  # every candidate was pruned and converted apart
    assert recipe.predicted_speedup >= 1.3  # what the chooser walked to, by the table
    assert recipe.achieved_speedup is not None and recipe.achieved_speedup > 1.0  # measured: the pruned int8 model is faster
    assert "speed-up" in (tmp_path / "first" / "report.md").read_text()
    assert 'id="time-per-layer-pointwise-p1.3x"' in (tmp_path / "first" / "report.html").read_text()
    # Another build (another output folder) times nothing again: the table comes from the latency cache.
    again = build(load_config(overrides={**settings, "out": tmp_path / "second"}))
    assert again.models[1].compression.latency_table.timed == 0
    # The same ratios for another build (at another size, say): nothing chosen, nothing timed.
    given = {**settings, "prune_speedup": None, "prune_ratios_from": tmp_path / "first" / "report.json", "out": tmp_path / "third"}
    third = build(load_config(overrides=given)).models[1]
    assert third.name == "pointwise-pgiven" and third.compression.group_ratios == recipe.group_ratios
    assert third.compression.ratios_from == str(tmp_path / "first" / "report.json") and third.compression.latency_table is None
