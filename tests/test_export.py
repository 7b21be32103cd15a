"""`deploy export android|ios`: which artifact goes into the app, and what the app folder receives."""
import json
import shutil
from pathlib import Path

import pytest

from pipeline.errors import UserInputError
from pipeline.export import choose_artifact, export
from tests.test_cli import assert_one_line_error, deploy


def _artifact(id, top1, fully_int8=None, size=100):
    return {"id": id, "accuracy": {"top1": top1}, "size_bytes": size,
            "int8_check": None if fully_int8 is None else {"fully_int8": fully_int8, "float_ops": []}}


ARTIFACTS = [_artifact("m_fp32", 0.99), _artifact("m_int8-ptq", 0.95, True, 50), _artifact("m_int8-qat", 0.97, True, 60),
             _artifact("m_dynamic-int8", 0.98, False)]


def test_explicit_artifact_wins_and_unknown_ids_are_listed():
    assert choose_artifact({"artifacts": ARTIFACTS}, "m_fp32").artifact["id"] == "m_fp32"
    with pytest.raises(UserInputError, match=r"--artifact nope: not in this run \(ids: m_fp32, m_int8-ptq, m_int8-qat, m_dynamic-int8\)"):
        choose_artifact({"artifacts": ARTIFACTS}, "nope")


def test_the_reports_host_recommendation_is_the_default():
    report = {"artifacts": ARTIFACTS, "recommendations": [
        {"target": "arm64-emu", "artifact": "m_fp32", "reason": "x", "constraints": {}},
        {"target": "host", "artifact": "m_int8-ptq", "reason": "fastest within 1 point", "constraints": {}},
    ]}
    choice = choose_artifact(report)
    assert choice.artifact["id"] == "m_int8-ptq" and "fastest within 1 point" in choice.reason


@pytest.mark.parametrize("recommendations", [None, [], [{"target": "host", "artifact": None, "reason": "none fits"}],
                                             [{"target": "host", "artifact": "gone"}], "garbage"])
def test_without_a_usable_recommendation_the_most_accurate_fully_int8_artifact(recommendations):
    report = {"artifacts": ARTIFACTS}
    if recommendations is not None:
        report["recommendations"] = recommendations if recommendations != "garbage" else [42]
    choice = choose_artifact(report)
    assert choice.artifact["id"] == "m_int8-qat" and "fully-int8" in choice.reason


def test_no_int8_and_no_recommendation_asks_for_artifact():
    with pytest.raises(UserInputError, match=r"choose one with --artifact \(ids: m_fp32, m_dynamic-int8\)"):
        choose_artifact({"artifacts": [ARTIFACTS[0], ARTIFACTS[3]]})


def recommended_artifact(run: Path) -> dict:
    """The artifact export picks by default: the report's host recommendation (the fastest; on the
    tiny test model fp32 and int8 are close, so which one wins depends on the machine's load)."""
    report = json.loads((run / "report.json").read_text())
    rec = next(r for r in report["recommendations"] if r["target"] == "host")
    return next(a for a in report["artifacts"] if a["id"] == rec["artifact"])


@pytest.mark.slow
def test_export_android_fills_the_app_assets(app_run, tmp_path):
    app = tmp_path / "android-demo"
    readme = app / "app/src/main/assets/model/README.md"
    readme.parent.mkdir(parents=True)
    readme.write_text("kept")
    result = deploy("export", "android", app_run, "--app-dir", app)
    assert result.returncode == 0, result.stderr
    model = readme.parent
    assert sorted(p.name for p in model.iterdir()) == ["README.md", "export.json", "golden", "model.json", "model.tflite"]
    chosen = recommended_artifact(app_run)
    assert (model / "model.tflite").read_bytes() == (app_run / chosen["path"]).read_bytes()
    assert json.loads((model / "model.json").read_text())["id"] == chosen["id"]
    assert json.loads((model / "export.json").read_text())["artifact"] == chosen["id"]
    assert json.loads((model / "golden/golden.json").read_text())["artifact"] == chosen["id"]
    assert readme.read_text() == "kept"
    assert f"exported {chosen['id']}" in result.stdout and "next: open android-demo/" in result.stdout
    # A second export of another artifact replaces the first one's files.
    other = next(a["id"] for a in json.loads((app_run / "report.json").read_text())["artifacts"] if a["id"] != chosen["id"])
    again = deploy("export", "android", app_run, "--app-dir", app, "--artifact", other)
    assert again.returncode == 0, again.stderr
    assert json.loads((model / "model.json").read_text())["id"] == other


@pytest.mark.slow
def test_export_errors_are_one_line(app_run, tmp_path):
    assert_one_line_error(deploy("export", "android", tmp_path / "nothing"), 2, "report.json: cannot read report")
    assert_one_line_error(deploy("export", "android", app_run, "--app-dir", tmp_path / "nope"), 2, "--app-dir")
    assert_one_line_error(deploy("export", "android", app_run, "--artifact", "x", "--app-dir", tmp_path), 2, "--artifact x: not in this run")
    broken = tmp_path / "broken"
    shutil.copytree(app_run, broken)
    (broken / recommended_artifact(broken)["path"]).unlink()
    assert_one_line_error(deploy("export", "android", broken, "--app-dir", tmp_path), 2, "missing; rerun `deploy build`")


@pytest.mark.slow
def test_export_ios_brings_the_core_ml_model_when_the_run_has_one(app_run, tmp_path):
    result = deploy("export", "ios", app_run, "--app-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    model = tmp_path / "DeployDemo/Model"
    assert (model / "model.mlpackage/Manifest.json").is_file() and (model / "model.tflite").is_file()
    coreml = json.loads((model / "model-coreml.json").read_text())
    assert coreml["labels"] == json.loads((model / "model.json").read_text())["labels"]
    assert "Core ML" not in result.stdout  # no "no Core ML model" note


@pytest.mark.slow
def test_export_ios_without_coreml_says_so(app_run, tmp_path):
    run = shutil.copytree(app_run, tmp_path / "run")
    shutil.rmtree(run / "artifacts/tiny/tiny_coreml.mlpackage")
    result = export(run, "ios", app_dir=tmp_path)
    assert not result.coreml and (tmp_path / "DeployDemo/Model/model.tflite").is_file()
    assert not (tmp_path / "DeployDemo/Model/model.mlpackage").exists()
    cli = deploy("export", "ios", run, "--app-dir", tmp_path)
    assert "no Core ML model in this run (build with --coreml" in cli.stdout


def test_ncnn_and_onnx_artifacts_never_go_into_the_apps():
    ncnn = {**_artifact("m_int8.ncnn", 0.99, True, 10), "format": "ncnn"}
    report = {"artifacts": [*ARTIFACTS, ncnn], "recommendations": [
        {"target": "host", "artifact": "m_int8.ncnn", "reason": "fastest", "constraints": {}}]}
    assert choose_artifact(report).artifact["id"] == "m_int8-qat"  # the host pick is ncnn: LiteRT cannot run it
    with pytest.raises(UserInputError, match="--artifact m_int8.ncnn: a ncnn artifact; the demo apps run TFLite"):
        choose_artifact(report, "m_int8.ncnn")
