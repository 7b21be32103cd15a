"""`deploy build` end to end on a tiny trained model and a tiny image folder."""
import json
from pathlib import Path

import pytest

from pipeline import report as report_files
from pipeline.build import build
from pipeline.report.assemble import gate_failures
from pipeline.config import load_config
from pipeline.errors import UserInputError
from pipeline.report import schema

FAST = {"qat_epochs": 1, "calibration_images": 12, "warmup": 1, "runs": 3, "threads": [1], "val_fraction": 0.25,
        "formats": ["tflite"]}  # ncnn and ONNX: tests/test_build_formats.py


def _config(model, data, out, **extra):
    return load_config(overrides={"models": [str(model)], "data": str(data), "out": out, **FAST, **extra})


@pytest.fixture(scope="module")
def run(trained_model_file, image_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return build(_config(trained_model_file, image_folder, out)), out


@pytest.mark.slow
def test_every_precision_is_built_verified_and_benchmarked(run):
    report, out = run
    assert [a.precision for a in report.artifacts] == ["fp32", "fp16", "dynamic-int8", "int8-ptq", "int8-qat"]
    for a in report.artifacts:
        assert (out / a.path).stat().st_size == a.size_bytes
        assert a.format == "tflite" and a.model == "tiny"
        assert 0 <= a.accuracy.top1 <= 1 and a.accuracy.n == 9
        [bench] = a.benchmarks
        assert bench.target == "host" and bench.threads == 1 and bench.delegate == "xnnpack"
        assert bench.latency_ms.n == 3 and bench.latency_ms.p50 <= bench.latency_ms.p99
        assert 0 < bench.peak_rss_mb < 1000
        assert bench.isolation.startswith("alone")  # nothing ran beside it, and the report says so
    by_precision = {a.precision: a for a in report.artifacts}
    assert by_precision["fp32"].accuracy.agreement == 1.0
    assert by_precision["int8-ptq"].int8_check.fully_int8 and by_precision["int8-qat"].int8_check.fully_int8
    assert by_precision["fp32"].int8_check is None


@pytest.mark.slow
def test_metadata_travels_with_each_artifact(run):
    report, out = run
    meta = json.loads((out / report.artifacts[3].metadata_path).read_text())
    assert meta["labels"] == ["blue", "green", "red"]
    assert meta["preprocessing"]["mean"] == [127.5] * 3 and meta["preprocessing"]["height"] == 16
    assert meta["precision"] == "int8-ptq" and meta["calibration_images"] == 12
    assert meta["tools"]["tensorflow"] == "2.21.0"


@pytest.mark.slow
def test_report_files_agree_with_the_result(run):
    report, out = run
    assert report_files.load(out) == report
    md = (out / "report.md").read_text()
    for a in report.artifacts:
        assert f"{100 * a.accuracy.top1:.2f}" in md and a.path in md
    model = report.models[0]
    assert model.params > 0 and model.macs > 0 and model.qat.status == "ok"
    assert model.labels == ["blue", "green", "red"]


@pytest.mark.slow
def test_second_identical_run_reuses_every_stage(run, trained_model_file, image_folder):
    _, out = run
    again = build(_config(trained_model_file, image_folder, out))
    lineage = sorted(out.glob("cache/*/*/lineage.json"))
    # import, data, preprocessing_probe (no preprocessing flag given), reference, qat, qat_check, 5 x (convert, verify, bench)
    assert len(lineage) == 1 + 1 + 1 + 1 + 1 + 1 + 5 * 3
    assert [a.accuracy for a in again.artifacts] == [a.accuracy for a in run[0].artifacts]


@pytest.mark.slow
def test_changed_data_invalidates_what_depends_on_it(trained_model_file, image_folder, tmp_path):
    from tests.conftest import make_image_folder

    out = tmp_path / "out"
    config = _config(trained_model_file, image_folder, out, precisions=["fp32"])
    build(config)
    data = make_image_folder(tmp_path / "other", per_class=12, seed=5)
    from pipeline.executors.scheduler import Scheduler

    seen = []
    original = Scheduler._settle

    def spy(self, node, outcome):
        seen.append((node.stage.name, outcome.cached))
        return original(self, node, outcome)

    Scheduler._settle = spy
    try:
        build(_config(trained_model_file, data, out, precisions=["fp32"]))
    finally:
        Scheduler._settle = original
    assert dict(seen) == {"import": True, "data": False, "preprocessing_probe": False, "reference": False, "convert": False,
                          "verify": False, "bench": False}


@pytest.mark.slow
def test_qat_impossible_falls_back_to_ptq_or_fails_when_required(image_folder, tmp_path):
    from pipeline.tf_import import keras

    k = keras()
    inputs = k.Input((16, 16, 3))
    x = k.layers.Lambda(lambda t: t * 1.0, name="scale_by_one")(inputs)
    x = k.layers.Conv2D(4, 3)(x)
    x = k.layers.GlobalAveragePooling2D()(x)
    path = tmp_path / "lambda.keras"
    k.Model(inputs, k.layers.Dense(3, activation="softmax")(x)).save(path)

    report = build(_config(path, image_folder, tmp_path / "out", precisions=["int8-qat"], trust_model=True))
    assert [a.precision for a in report.artifacts] == ["int8-ptq"]
    assert report.models[0].qat.status == "unsupported"
    assert "'scale_by_one' (Lambda)" in report.models[0].qat.reason

    with pytest.raises(UserInputError, match="'scale_by_one' \\(Lambda\\) cannot be quantized.*--require-qat"):
        build(_config(path, image_folder, tmp_path / "out", precisions=["int8-qat"], trust_model=True, require_qat=True))


@pytest.mark.slow
def test_builtin_architecture_is_trained_on_the_data(image_folder, tmp_path):
    config = load_config(overrides={
        "models": ["squeezenet"], "data": str(image_folder), "out": tmp_path, "input_size": 32, "alpha": 0.25,
        "epochs": 2, "precisions": ["fp32"], **FAST,
    })
    report = build(config)
    model = report.models[0]
    assert model.source == "squeezenet" and model.input_shape == [32, 32, 3] and model.num_classes == 3
    [artifact] = report.artifacts
    assert artifact.accuracy.agreement == 1.0
    history = json.loads(next(tmp_path.glob("cache/train/*/result.json")).read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    # The report says how: a few dozen images give early stopping no hold-out to decide on.
    training = model.training
    assert (training.epochs, training.epochs_run, training.augment, training.early_stopping) == (2, 2, "affine", "off")
    assert "fewer than" in training.early_stopping_note
    assert f"Trained here: {training.sentence()}." in (tmp_path / "report.md").read_text()


@pytest.mark.slow
def test_a_killed_build_resumes_and_trusts_nothing_half_written(trained_model_file, image_folder, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    args = [sys.executable, "-m", "pipeline.cli", "build", "--model", str(trained_model_file), "--data", str(image_folder),
            "--out", str(out), "--threads", "1", "--runs", "3", "--warmup", "1", "--calibration-images", "10",
            "--qat-epochs", "1", "--val-fraction", "0.25", "--precisions", "fp32,int8-ptq", "--formats", "tflite"]
    process = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:  # kill -9 in the middle of the first conversion
        if "[run]    convert" in line:
            break
    deadline = time.time() + 120  # a worker process runs it: wait until its temp folder is there
    while not list(out.glob("cache/convert/.tmp-*")) and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (out / "report.json").exists()
    assert list(out.glob("cache/convert/.tmp-*"))  # the unfinished stage's work is there, but not trusted
    assert not list(out.glob("cache/convert/*/lineage.json"))

    rerun = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert "[cached] data" in rerun.stderr and "[run]    convert" in rerun.stderr
    assert not list(out.glob("cache/*/.tmp-*"))  # abandoned work was cleaned up
    assert len(json.loads((out / "report.json").read_text())["artifacts"]) == 2


def test_unwritable_output_folder(trained_model_file, image_folder, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(UserInputError, match="--out .*file.txt/out: cannot write"):
        build(_config(trained_model_file, image_folder, blocker / "out"))


def test_class_count_mismatch_is_named(trained_model_file, tmp_path):
    from tests.conftest import make_image_folder

    data = make_image_folder(tmp_path / "two", per_class=4, classes={"a": (0, 0, 0), "b": (255, 255, 255)})
    with pytest.raises(UserInputError, match="outputs 3 classes but .* has 2 class folders"):
        build(_config(trained_model_file, data, tmp_path / "out"))


def test_missing_model_file_names_builtins(image_folder, tmp_path):
    with pytest.raises(UserInputError, match="--model .*nope.keras: file not found \\(built-in models: mobilenet_v1"):
        build(_config(tmp_path / "nope.keras", image_folder, tmp_path / "out"))


def _artifact(precision, drop, fully_int8=True):
    return schema.Artifact(
        id=f"m_{precision}", model="m", format="tflite", precision=precision, path="p", metadata_path="p.json",
        size_bytes=1, io={}, calibration_images=0, accuracy=schema.Accuracy(top1=0.9, agreement=0.9, n=10),
        accuracy_drop_points=drop,
        int8_check=schema.Int8Check(fully_int8=fully_int8, float_ops=[] if fully_int8 else ["CONV_2D#3"]),
    )


def test_quality_gate_counts_drops_above_the_limit_and_float_ops():
    artifacts = [_artifact("fp16", 0.1), _artifact("int8-ptq", 2.5), _artifact("int8-qat", 0.0, fully_int8=False)]
    failures = gate_failures(artifacts, max_drop=1.0)
    assert [(f.artifact, f.reason) for f in failures] == [
        ("m_int8-ptq", "top-1 dropped 2.50 points (max 1.0)"),
        ("m_int8-qat", "float compute left in an int8 model: CONV_2D#3"),
    ]
    assert [f.artifact for f in gate_failures(artifacts, None)] == ["m_int8-qat"]


def test_committed_json_schema_matches_the_code():
    committed = Path(__file__).resolve().parent.parent / "docs" / "report.schema.json"
    assert committed.read_text() == report_files.json_schema(), "run: python scripts/write_report_schema.py"
