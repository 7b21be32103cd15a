"""The variant mechanism (Planner.variant) and the plan --prune makes, without running a stage."""
from __future__ import annotations

from pipeline import rules
from pipeline.build import Build, dry_run
from pipeline.config import load_config

FLAGS = {"models": ["squeezenet"], "data": "demo", "formats": ["tflite"], "precisions": ["fp32", "int8-qat"], "threads": [1]}


def test_dry_run_shows_the_prune_stage_and_the_variants_stages(tmp_path):
    config = load_config(overrides={**FLAGS, "out": tmp_path, "prune": "l1-filter", "prune_keep_macs": 0.4, "distill": True})
    lines = dry_run(config)
    stages = [line.split()[2:] for line in lines if line.startswith("  run")]
    for stage in (["prune", "squeezenet", "l1-filter"], ["reference", "squeezenet-p40"], ["qat", "squeezenet-p40"],
                  ["convert", "squeezenet-p40", "int8-qat"], ["qat", "squeezenet"]):  # a stage line may end with its recipe
        assert any(s[: len(stage)] == stage for s in stages), stage
    assert not any("squeezenet-p40-p40" in line for line in lines)  # a variant is not pruned again


def test_a_speedup_is_chosen_on_its_target_alone_between_sensitivity_and_pruning(tmp_path):
    config = load_config(overrides={**FLAGS, "out": tmp_path, "prune": "l1-filter", "prune_speedup": 1.6})
    lines = [line for line in dry_run(config) if line.startswith("  run")]
    order = [next(i for i, line in enumerate(lines) if line.split()[2:4] == stage)
             for stage in (["sensitivity", "squeezenet"], ["prune_choice", "squeezenet"], ["prune", "squeezenet"],
                           ["reference", "squeezenet-p1.6x"], ["speedup", "squeezenet-p1.6x"])]
    assert order == sorted(order)
    choice = lines[order[1]]
    assert "1.6x on host" in choice and "runs alone" in choice  # timed on the host with nothing beside it


def test_a_variant_goes_through_the_rules_after_the_one_that_made_it(tmp_path, monkeypatch):
    """Any compression rule (sparsity, clustering...) wires its variant in with one call."""
    monkeypatch.setattr(rules, "RULES", [])
    made = []

    @rules.rule
    def toy_compression(p, m):
        if m.parent is None:  # a stand-in compression stage: the same training, shorter
            smaller = p.node(m.model.stage, m.model.config.model_copy(update={"epochs": 1}), m.model.inputs, label="toy")
            made.append(p.variant(m, "toy", smaller, {"method": "toy"}))

    for each in (rules.prune, rules.qat, rules.tflite):
        rules.rule(each)
    config = load_config(overrides={**FLAGS, "out": tmp_path, "distill": True})
    build = Build(config, "test", dry_run=True)
    try:
        _, models = build.plan()
    finally:
        build.close()
    parent, variant = models
    assert made == [variant] and parent.variants == [variant]
    assert (variant.name, variant.parent, variant.compression) == ("squeezenet-toy", "squeezenet", {"method": "toy"})
    assert variant.reference is not parent.reference and variant.baseline is parent.reference
    assert variant.qat is not None and variant.qat.inputs["teacher"] is parent.model  # the parent's float model teaches
    # int8-ptq: planned in case QAT turns out impossible, as for any model
    assert [a.precision for a in variant.artifacts] == ["fp32", "int8-qat", "int8-ptq"]
    assert {a.model for a in variant.artifacts} == {"squeezenet-toy"}


def test_sparsity_and_clustering_make_variants_whose_qat_keeps_what_they_made(tmp_path):
    config = load_config(overrides={**FLAGS, "out": tmp_path, "prune": "magnitude", "sparsity": 0.7, "cluster": 8})
    build = Build(config, "test", dry_run=True)
    try:
        _, models = build.plan()
    finally:
        build.close()
    parent, sparse, clustered = models
    assert (sparse.name, sparse.compression) == ("squeezenet-s70", {"method": "magnitude", "sparsity": 0.7})
    assert (clustered.name, clustered.compression) == ("squeezenet-c8", {"method": "clustering", "clusters": 8})
    assert sparse.model.stage.name == "sparsity" and sparse.model.config.sparsity == 0.7
    assert sparse.model.config.learning_rate == config.prune_learning_rate  # sparsity_learning_rate None: the pruning rate
    assert clustered.model.stage.name == "clustering" and clustered.model.config.clusters == 8
    assert (parent.qat.config.scheme, sparse.qat.config.scheme, clustered.qat.config.scheme) == (
        "default", "prune-preserve", "cluster-preserve")
    converted = {(m.name, a.precision): a.converted.config for m in models for a in m.artifacts}
    assert converted[("squeezenet-s70", "fp32")].sparse  # XNNPACK's sparse path wants sparse storage
    assert not converted[("squeezenet", "fp32")].sparse and not converted[("squeezenet-s70", "int8-qat")].sparse
