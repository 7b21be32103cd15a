"""QAT on a trained model keeps the float model's behaviour: it learns from the float model by
default, adds no augmentation the user did not ask for, keeps its best held-out epoch, and a QAT
that lost to post-training quantization is reported and never recommended."""
import json

import pytest

from pipeline.build import Build, build
from pipeline.config import load_config
from pipeline.report import schema
from pipeline.report.recommend import recommend
from pipeline.stages.qat_check import worse
from tests.report import fakes

FAST = {"qat_epochs": 1, "calibration_images": 12, "warmup": 1, "runs": 3, "threads": [1], "val_fraction": 0.25,
        "formats": ["tflite"], "precisions": ["fp32", "int8-ptq", "int8-qat"]}


def _planned(source, image_folder, out, **settings):
    config = load_config(overrides={"models": [str(source)], "data": str(image_folder), "out": out, **FAST, **settings})
    run = Build(config, "test", dry_run=True)
    try:
        _, models = run.plan()
    finally:
        run.close()
    return models[0]


def test_qat_learns_from_the_float_model_by_default(image_folder, tmp_path):
    m = _planned("squeezenet", image_folder, tmp_path)
    assert m.qat.config.distill is not None and m.qat.inputs["teacher"] is m.model
    assert m.qat.config.augment == "affine"  # a built-in model: what its float training used
    labels = _planned("squeezenet", image_folder, tmp_path, qat_teacher="labels")
    assert labels.qat.config.distill is None and "teacher" not in labels.qat.inputs


def test_qat_batchnorm_freeze_is_opt_in_and_qat_may_keep_its_first_epoch(image_folder, tmp_path):
    from pipeline.models.training import _stopping_record

    assert _planned("squeezenet", image_folder, tmp_path).qat.config.freeze_bn_after == 0  # measured: not the default
    assert _planned("squeezenet", image_folder, tmp_path, qat_freeze_bn_after=1).qat.config.freeze_bn_after == 1
    # QAT watches from epoch 0 (stages/qat.py): a fine-tuning's first epoch can be its best, and is kept.
    rows = [{"epoch": e, "held_out_accuracy": a} for e, a in ((1, 0.97), (2, 0.90), (3, 0.84))]
    record = _stopping_record(rows, 3, 2, [0] * 31, watch_from=0)
    assert record["best_epoch"] == 1 and record["watched_from_epoch"] == 1
    # ... and the model before any fine-tuning (epoch 0) too: an epoch must beat it, a tie keeps the start.
    rows = [{"epoch": e, "held_out_agreement": a} for e, a in ((1, 0.99), (2, 0.98))]
    record = _stopping_record(rows, 2, 2, [0] * 31, 0, "agreement", start={"held_out_agreement": 0.99})
    assert (record["best_epoch"], record["best_held_out_agreement"], record["watched_from_epoch"]) == (0, 0.99, 0)
    rows[1]["held_out_agreement"] = 1.0
    assert _stopping_record(rows, 2, 2, [0] * 31, 0, "agreement", start={"held_out_agreement": 0.99})["best_epoch"] == 2


def test_qat_of_a_user_model_adds_no_augmentation_unless_asked(trained_model_file, image_folder, tmp_path):
    assert _planned(trained_model_file, image_folder, tmp_path).qat.config.augment == "none"
    assert _planned(trained_model_file, image_folder, tmp_path, augment="basic").qat.config.augment == "basic"


def test_both_int8_precisions_get_a_qat_check(image_folder, tmp_path):
    m = _planned("squeezenet", image_folder, tmp_path)
    assert m.qat_check is not None and m.qat_check.when.parent is m.qat
    assert {m.qat_check.inputs["qat"].config.precision, m.qat_check.inputs["ptq"].config.precision} == {"int8-qat", "int8-ptq"}
    assert _planned("squeezenet", image_folder, tmp_path, precisions=["fp32", "int8-qat"]).qat_check is None


def test_worse_is_top1_first_then_agreement():
    assert worse({"top1": 0.90, "agreement": 1.0}, {"top1": 0.91, "agreement": 0.9})
    assert worse({"top1": 0.90, "agreement": 0.95}, {"top1": 0.90, "agreement": 0.96})
    assert not worse({"top1": 0.90, "agreement": 0.96}, {"top1": 0.90, "agreement": 0.96})
    assert not worse({"top1": 0.92, "agreement": 0.5}, {"top1": 0.91, "agreement": 1.0})


def test_the_recommendation_skips_a_qat_worse_than_ptq():
    qat = fakes.artifact("int8-qat", 1.0, 0.2, [fakes.bench(p50=0.5)])
    ptq = fakes.artifact("int8-ptq", 1.0, 0.1, [fakes.bench(p50=0.6)])
    model = fakes.model()
    assert recommend(fakes.report([qat, ptq], [model]), schema.Constraints())[0].artifact == "m_int8-qat"
    figures = {"images": 100, "qat": {"top1": 0.8, "agreement": 0.85}, "ptq": {"top1": 0.9, "agreement": 0.97}}
    model.qat = schema.QatStatus(status="ok", versus_ptq=schema.QatVersusPtq(**figures, worse=True))
    [rec] = recommend(fakes.report([qat, ptq], [model]), schema.Constraints())
    assert rec.artifact == "m_int8-ptq" and "1 other(s) miss them" in rec.reason
    [rec] = recommend(fakes.report([qat], [model]), schema.Constraints())
    assert rec.artifact is None and "QAT worse than int8-ptq on 100 held-out images (top-1 80.00 % vs 90.00 %)" in rec.reason


@pytest.mark.slow
def test_a_qat_ruined_by_its_learning_rate_is_reported_and_not_recommended(trained_model_file, image_folder, tmp_path):
    config = load_config(overrides={"models": [str(trained_model_file)], "data": str(image_folder), "out": tmp_path, **FAST,
                                    "qat_learning_rate": 0.5, "qat_teacher": "labels", "early_stopping_patience": 0})
    report = build(config)
    versus = report.models[0].qat.versus_ptq
    assert versus.worse and versus.qat.top1 < versus.ptq.top1 and versus.images > 0, versus
    assert all(r.artifact != "tiny_int8-qat" for r in report.recommendations)
    stored = json.loads((tmp_path / "report.json").read_text())["models"][0]["qat"]["versus_ptq"]
    assert stored["worse"] is True and stored["qat"]["top1"] == versus.qat.top1
    assert "worse than int8-ptq" in (tmp_path / "report.md").read_text()


@pytest.mark.slow
def test_a_diverged_qat_is_refused_not_converted(trained_model_file, image_folder, tmp_path, monkeypatch):
    """NaN weights give NaN ranges: the converter then fails (an untrained EfficientNetB0 did), or
    writes a model of NaNs. Adam's normalised steps keep even absurd rates finite on the tiny model,
    so the fitting reports a NaN loss here."""
    from pipeline.models import training

    fit = training.fit

    def diverging(*args, **kwargs):
        history, stopping = fit(*args, **kwargs)
        return [{**history[0], "loss": float("nan")}, *history[1:]], {**stopping, "best_epoch": 1}  # and epoch 1 kept

    monkeypatch.setattr(training, "fit", diverging)
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")  # the QAT stage runs in this process (jobs 1), patched
    config = load_config(overrides={"models": [str(trained_model_file)], "data": str(image_folder), "out": tmp_path, **FAST,
                                    "jobs": 1})
    run = Build(config, "test")
    try:
        _, models = run.plan()
        outcomes = run.executor.run([*models[0].qat.ancestors(), models[0].qat])
    finally:
        run.close()
    result = outcomes[models[0].qat.key].result
    assert result["status"] == "unsupported" and "diverged (loss NaN in epoch 1)" in result["reason"], result
