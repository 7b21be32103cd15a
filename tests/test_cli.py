"""The `deploy` command as a user runs it: real processes, exit codes, one-line errors."""
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

DEPLOY = [sys.executable, "-m", "pipeline.cli"]


def deploy(*args, cwd=None, env=None):
    environment = None if env is None else {**os.environ, **env}
    return subprocess.run([*DEPLOY, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600, env=environment)


def assert_one_line_error(result, code, pattern):
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and pattern in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_help_does_not_import_tensorflow():
    code = "import sys; from pipeline.cli import cli; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    result = deploy("--help")
    assert result.returncode == 0
    for command in ("build", "bench", "report", "compare", "models", "doctor"):
        assert command in result.stdout
    text = " ".join(result.stdout.split())  # click rewraps the epilog
    assert "Exit codes: 0 success, 1 quality gate failed, 2 bad input or usage, 3 a tool failed." in text


def test_dry_run_prints_the_resolved_config(tmp_path):
    config = tmp_path / "deploy.yaml"
    config.write_text("epochs: 4\nmodels: [squeezenet]\n")
    result = deploy("build", "--config", config, "--seed", "9", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "epochs: 4" in result.stdout and "seed: 9" in result.stdout and "- squeezenet" in result.stdout
    assert "input_size: 32 for built-in models" in result.stdout


def test_bad_config_exits_2(tmp_path):
    config = tmp_path / "deploy.yaml"
    config.write_text("batch_size: [1]\n")
    assert_one_line_error(deploy("build", "--config", config), 2, "deploy.yaml: key 'batch_size'")


def test_config_that_is_not_text_exits_2(tmp_path):
    config = tmp_path / "deploy.yaml"
    config.write_bytes(bytes(range(128, 256)))
    assert_one_line_error(deploy("build", "--config", config), 2, "deploy.yaml: not a YAML config file (not UTF-8 text")


def test_bad_flag_exits_2():
    result = deploy("build", "--epochs", "ten")
    assert result.returncode == 2 and "Invalid value for '--epochs'" in result.stderr


@pytest.mark.parametrize("content", [None, b"garbage"])
def test_missing_or_corrupt_model_exits_2(tmp_path, image_folder, content):
    model = tmp_path / "model.keras"
    if content:
        model.write_bytes(content)
    result = deploy("build", "--model", model, "--data", image_folder, "--out", tmp_path / "out")
    assert_one_line_error(result, 2, "model.keras")


@pytest.mark.parametrize("content", [b"not a protobuf at all \xff\xfe", None])
def test_not_onnx_or_truncated_onnx_exits_2(tmp_path, image_folder, content):
    model = tmp_path / "model.onnx"
    if content is None:  # a real ONNX file cut in half, as an interrupted download leaves it
        import onnx

        graph = onnx.helper.make_graph(
            [onnx.helper.make_node("Relu", ["x"], ["y"])], "g",
            [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])],
            [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3, 8, 8])],
            [onnx.numpy_helper.from_array(np.zeros((64, 64), np.float32), "padding_weights")])
        data = onnx.helper.make_model(graph).SerializeToString()
        content = data[: len(data) // 2]
    model.write_bytes(content)
    result = deploy("build", "--model", model, "--data", image_folder, "--out", tmp_path / "out")
    assert_one_line_error(result, 2, "model.onnx: not a readable ONNX file")


def test_data_folder_problems_exit_2(tmp_path):
    (tmp_path / "data" / "only").mkdir(parents=True)
    result = deploy("build", "--model", "squeezenet", "--data", tmp_path / "data", "--out", tmp_path / "out")
    assert_one_line_error(result, 2, "only one class folder")
    assert not (tmp_path / "out").exists()  # bad data is found before anything is written


@pytest.mark.parametrize("contents, named", [
    ({"a/0.jpg": b"", "a/1.png": b"not an image", "b/0.jpg": b"", "b/1.jpg": b"<html>"},
     "data: none of its 4 image files could be read as an image (first: a/0.jpg, a/1.png, b/0.jpg, ...)"),
    ({"a/notes.txt": b"x", "b/notes.txt": b"x"}, "data: no .jpg/.png images in its class folders"),
])
def test_data_folder_without_a_readable_image_exits_2_naming_the_files(tmp_path, contents, named):
    for name, content in contents.items():
        (tmp_path / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / name).write_bytes(content)
    result = deploy("build", "--model", "squeezenet", "--data", tmp_path / "data", "--out", tmp_path / "out", "--epochs", "1")
    assert_one_line_error(result, 2, named)


def test_out_inside_data_exits_2(image_folder):
    result = deploy("build", "--model", "squeezenet", "--data", image_folder, "--out", image_folder / "build")
    assert_one_line_error(result, 2, "is inside --data")
    assert not (image_folder / "build").exists()


def test_unwritable_out_exits_2(tmp_path):
    (tmp_path / "f").write_text("")
    result = deploy("build", "--out", tmp_path / "f" / "sub", "--dry-run")
    assert result.returncode == 0  # dry-run writes nothing
    result = deploy("build", "--out", tmp_path / "f" / "sub")
    assert_one_line_error(result, 2, "cannot write there")


def test_debug_shows_the_traceback(tmp_path):
    result = deploy("--debug", "build", "--model", tmp_path / "nope.keras", "--data", tmp_path, "--out", tmp_path / "o")
    assert result.returncode == 2 and "Traceback" in result.stderr


def test_models_lists_the_builtin_architectures():
    result = deploy("models")
    assert result.returncode == 0
    for name in ("mobilenet_v1", "mobilenet_v2", "shufflenet_v2", "squeezenet"):
        assert name in result.stdout


def test_doctor_reports_versions():
    result = deploy("doctor")
    assert result.returncode == 0, result.stdout
    assert "tensorflow" in result.stdout and "2.21.0" in result.stdout
    assert "ai-edge-litert" in result.stdout and "MISSING" not in result.stdout


@pytest.fixture(scope="module")
def built(trained_model_file, image_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-run")
    result = deploy(
        "build", "--model", trained_model_file, "--data", image_folder, "--out", out, "--precisions", "fp32,int8-ptq",
        "--threads", "1", "--runs", "3", "--warmup", "1", "--calibration-images", "10", "--val-fraction", "0.25",
    )
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.slow
def test_build_then_report_regenerates_markdown_from_json(built):
    md = built / "report.md"
    original = md.read_text()
    md.unlink()
    result = deploy("report", built)
    assert result.returncode == 0 and md.read_text() == original


def test_report_without_a_run_exits_2(tmp_path):
    assert_one_line_error(deploy("report", tmp_path), 2, "report.json: cannot read report")


@pytest.mark.parametrize("content", [bytes(range(256)), b'{"schema_version": "2.0", "models": [', b"[]"])
@pytest.mark.parametrize("command", ["report", "compare", "export"])
def test_broken_report_json_exits_2_naming_it(tmp_path, content, command):
    (tmp_path / "report.json").write_bytes(content)
    args = {"report": [tmp_path], "compare": [tmp_path, tmp_path], "export": ["android", tmp_path]}[command]
    assert_one_line_error(deploy(command, *args), 2, "report.json: ")


@pytest.mark.slow
def test_quality_gate_exit_code_follows_the_measured_drops(built, trained_model_file, image_folder):
    report = json.loads((built / "report.json").read_text())
    worst = max(a["accuracy_drop_points"] for a in report["artifacts"])
    result = deploy(
        "build", "--model", trained_model_file, "--data", image_folder, "--out", built, "--precisions", "fp32,int8-ptq",
        "--threads", "1", "--runs", "3", "--warmup", "1", "--calibration-images", "10", "--val-fraction", "0.25",
        "--max-accuracy-drop", max(worst - 0.01, 0),
    )
    if worst > 0:
        assert_one_line_error(result, 1, "quality gate failed")
    else:
        assert result.returncode == 0
    assert json.loads((built / "report.json").read_text())["quality_gate"]["max_accuracy_drop_points"] == max(worst - 0.01, 0)


@pytest.mark.slow
def test_bench_one_artifact(built):
    artifact = next(Path(built, "artifacts").rglob("*_int8-ptq.tflite"))
    result = deploy("bench", artifact, "--threads", "1,2", "--runs", "4", "--warmup", "1", "--json")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["threads"] for r in records] == [1, 2]
    assert all(r["latency_ms"]["n"] == 4 and r["delegate"] == "xnnpack" for r in records)


def test_bench_missing_artifact_exits_2(tmp_path):
    assert_one_line_error(deploy("bench", tmp_path / "x.tflite"), 2, "x.tflite: artifact file not found")


@pytest.mark.parametrize("name, content, named", [
    ("bad.tflite", b"not a flatbuffer", "bad.tflite: not a TFLite model"),
    ("bad.ncnn.param", b"hello\n", "bad.ncnn.param: not an ncnn .param file"),
    ("alone.ncnn.param", b"7767517\n1 1\nInput in0 0 1 in0 0=8 1=8 2=3\n", "alone.ncnn.bin: the ncnn weights"),
    ("model.pt", b"x", "model.pt: unknown artifact type"),
    ("noise.mnn", bytes(range(256)) * 16, "noise.mnn: its runtime cannot load it (invalid model"),
])
def test_bench_file_that_is_no_artifact_exits_2_naming_it(tmp_path, name, content, named):
    bad = tmp_path / name
    bad.write_bytes(content)
    assert_one_line_error(deploy("bench", bad, "--threads", "1"), 2, named)


@pytest.mark.parametrize("name, content, named", [
    ("noise.ncnn.param", b"7767517\nqwe rty\nzxc 1 2 3\n", "noise.ncnn.param: not an ncnn .param file (its second line is not"),
    ("short.ncnn.param", b"7767517\n2 2\nInput in0 0 1 in0 0=8 1=8 2=3\n", "short.ncnn.param: not an ncnn .param file (it declares 2 layers and holds 1)"),
    ("binary.ncnn.param", bytes(range(128, 256)), "binary.ncnn.param: not an ncnn .param file (it is not text)"),
])
def test_bench_ncnn_param_of_noise_exits_2_with_or_without_its_bin(tmp_path, name, content, named):
    bad = tmp_path / name
    bad.write_bytes(content)
    assert_one_line_error(deploy("bench", bad, "--threads", "1"), 2, named)
    bad.with_suffix(".bin").write_bytes(bytes(range(256)) * 8)
    assert_one_line_error(deploy("bench", bad, "--threads", "1"), 2, named)


@pytest.mark.slow
@pytest.mark.parametrize("pattern, cut, named", [
    ("*_fp32.tflite", "model", "its runtime cannot load it (invalid model"),
    ("*_fp32.ncnn.param", "model", "not an ncnn .param file (it declares"),
    ("*_fp32.ncnn.param", "weights", "its runtime cannot load it (invalid model"),
    ("*_fp32.onnx", "model", "not a readable ONNX file"),
])
def test_bench_truncated_artifact_exits_2_naming_it(built, tmp_path, pattern, cut, named):
    """A file cut in half, as an interrupted copy leaves it: the user's input, not a failed tool."""
    original = next(Path(built, "artifacts").rglob(pattern))
    copy = tmp_path / original.name.replace("_fp32", "_cut")
    copy.write_bytes(original.read_bytes())
    if original.suffix == ".param":
        copy.with_suffix(".bin").write_bytes(original.with_suffix(".bin").read_bytes())
    victim = copy.with_suffix(".bin") if cut == "weights" else copy
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    assert_one_line_error(deploy("bench", copy, "--threads", "1"), 2, f"{copy.name}: {named}")


@pytest.mark.slow
def test_bench_ncnn_and_onnx_artifacts_report_the_same_fields(built):
    tflite = json.loads(deploy("bench", next(Path(built, "artifacts").rglob("*_fp32.tflite")), "--threads", "1",
                               "--runs", "3", "--json").stdout)
    for pattern, runtime in (("*_fp16.ncnn.param", "ncnn"), ("*_fp32.onnx", "onnxruntime")):
        result = deploy("bench", next(Path(built, "artifacts").rglob(pattern)), "--threads", "1", "--runs", "3", "--json")
        assert result.returncode == 0, result.stderr
        record = json.loads(result.stdout)
        assert record["runtime"] == runtime and record["latency_ms"]["n"] == 3 and set(record) == set(tflite)
        assert record["input"]["shape"] == [1, 3, 16, 16]
        assert record["options"].get("use_fp16_arithmetic", False) is (runtime == "ncnn")  # from the fp16 recipe


@pytest.mark.slow
def test_converter_crash_exits_3_and_the_other_artifacts_are_still_reported(trained_model_file, image_folder, tmp_path):
    crash = tmp_path / "pnnx"
    crash.write_text("#!/bin/sh\necho 'pnnx: out of memory in pass_level2' >&2\nkill -SEGV $$\n")
    crash.chmod(crash.stat().st_mode | stat.S_IEXEC)
    out = tmp_path / "out"
    result = deploy(
        "build", "--model", trained_model_file, "--data", image_folder, "--out", out, "--precisions", "fp32",
        "--ncnn-precisions", "fp32,int8", "--threads", "1", "--runs", "2", "--warmup", "0", "--val-fraction", "0.25",
        env={"DEPLOY_PNNX": str(crash)},
    )
    assert_one_line_error(result, 3, "2 artifact(s) or benchmark(s) failed")
    assert "killed by signal 11): pnnx: out of memory in pass_level2" in result.stderr
    report = json.loads((out / "report.json").read_text())
    assert sorted((a["format"], a["precision"]) for a in report["artifacts"]) == [("onnx", "fp32"), ("tflite", "fp32")]
    assert [(f["format"], f["precision"]) for f in report["failures"]] == [("ncnn", "fp32"), ("ncnn", "int8")]
    assert "could not be built" in (out / "report.md").read_text()
