"""The host benchmark target and the device runner it shares with the ARM targets."""
import ast
import json
import subprocess
import sys

import numpy as np
import pytest

from pipeline.targets.host import RUNNER, BenchError, default_thread_counts, run_benchmark

RUNS = 20
EXPECTED_KEYS = {"runner_version", "runtime", "runtime_version", "delegate", "threads"}
EXPECTED_KEYS |= {"warmup", "latency_ms", "init_ms", "peak_rss_mb", "cpu", "python", "input"}
EXPECTED_KEYS |= {"target", "options"}


def _tiny_classifier():
    from pipeline.tf_import import tensorflow

    tensorflow()  # sets TF_USE_LEGACY_KERAS before tf_keras is imported
    import tf_keras

    return tf_keras.Sequential(
        [
            tf_keras.Input((16, 16, 3)),
            tf_keras.layers.Conv2D(8, 3, activation="relu"),
            tf_keras.layers.GlobalAveragePooling2D(),
            # 8 -> 10: tflite-runtime 2.14 on (emulated) armv7 crashes on int8 FULLY_CONNECTED layers
            # narrower than that (fewer than 8 inputs or 4 outputs); the emulator tests share this model.
            tf_keras.layers.Dense(10, activation="softmax"),
        ]
    )


def _convert(model, int8: bool) -> bytes:
    from pipeline.tf_import import tensorflow

    tf = tensorflow()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        rng = np.random.default_rng(0)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [rng.uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)] for _ in range(8)
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Both artifacts converted once for the module: {"float32": path, "int8": path}."""
    return _float32_and_int8(_tiny_classifier(), tmp_path_factory.mktemp("tflite"), "tiny")


def _float32_and_int8(model, folder, stem) -> dict:
    """{"float32": path, "int8": path}: the model converted both ways into folder/STEM_DTYPE.tflite."""
    paths = {}
    for dtype in ("float32", "int8"):
        paths[dtype] = folder / f"{stem}_{dtype}.tflite"
        paths[dtype].write_bytes(_convert(model, int8=dtype == "int8"))
    return paths


def _run_runner(model_path, warmup, runs):
    """The runner script run directly, as the ARM targets will run it."""
    command = [sys.executable, str(RUNNER), str(model_path), "--threads", "1"]
    command += ["--warmup", str(warmup), "--runs", str(runs)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.fixture
def garbage(tmp_path):
    path = tmp_path / "garbage.tflite"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    return path


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_benchmark_reports_a_complete_distribution(models, dtype):
    result = run_benchmark(models[dtype], threads=1, warmup=3, runs=RUNS)

    assert EXPECTED_KEYS <= result.keys()
    assert result["target"] == "host"
    assert result["runtime"] == "ai-edge-litert"
    latency = result["latency_ms"]
    assert {"p25", "p50", "p75", "p90", "p99", "mean", "std", "n"} <= latency.keys()
    assert latency["n"] == RUNS
    assert 0 < latency["p25"] <= latency["p50"] <= latency["p75"] <= latency["p90"] <= latency["p99"]
    assert latency["std"] >= 0
    assert result["delegate"] == "xnnpack"
    assert result["peak_rss_mb"] > 0
    assert result["init_ms"] > 0
    assert result["input"] == {"shape": [1, 16, 16, 3], "dtype": dtype}
    assert {"machine", "model", "count"} <= result["cpu"].keys()


def test_threads_and_warmup_are_recorded(models):
    result = run_benchmark(models["float32"], threads=2, warmup=0, runs=1)

    assert (result["threads"], result["warmup"]) == (2, 0)
    assert result["latency_ms"]["n"] == 1
    assert result["latency_ms"]["std"] == 0


def test_missing_model_names_the_path(tmp_path):
    missing = tmp_path / "missing.tflite"
    with pytest.raises(BenchError, match="missing.tflite") as caught:
        run_benchmark(missing, threads=1, warmup=0, runs=1)
    assert caught.value.model_path == missing
    assert any("not found" in line for line in caught.value.stderr_tail)


def test_garbage_model_names_the_path(garbage):
    with pytest.raises(BenchError, match="garbage.tflite") as caught:
        run_benchmark(garbage, threads=1, warmup=0, runs=1)
    assert len(caught.value.stderr_tail) <= 5


def test_timeout_is_a_bench_error(models):
    with pytest.raises(BenchError, match="timed out"):
        run_benchmark(models["float32"], threads=1, warmup=0, runs=1, timeout_s=0.01)


def test_runner_on_garbage_exits_2_with_one_line(garbage):
    proc = _run_runner(garbage, warmup=0, runs=1)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr
    assert str(garbage) in proc.stderr


def test_runner_stdout_is_exactly_one_json_object(models):
    proc = _run_runner(models["int8"], warmup=1, runs=2)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip().splitlines()) == 1
    assert json.loads(proc.stdout)["runner_version"] == 5  # 3: --inputs batches, --probe, --logits; 4: .mnn; 5: board, quartiles


def test_runner_imports_only_stdlib_numpy_and_a_runtime():
    # The script is copied alone to ARM boards: a pipeline or TensorFlow import would break there.
    allowed = set(sys.stdlib_module_names) | {"numpy", "ai_edge_litert", "tflite_runtime", "ncnn", "onnxruntime", "MNN"}
    tree = ast.parse(RUNNER.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert imported <= allowed, imported - allowed


def test_host_target_does_not_import_tensorflow():
    code = "import sys, pipeline.targets.host; print('tensorflow' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "False", proc.stderr


def test_default_thread_counts_are_one_and_all_cores(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    assert default_thread_counts() == [1, 4]
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert default_thread_counts() == [1]


def test_ncnn_and_onnx_artifacts_run_in_their_runtimes_with_the_same_fields(models, tmp_path):
    """One JSON format for every runtime; ncnn records its options and takes its input shape
    from the Input layer the converter wrote."""
    from converters import ncnn as ncnn_converter
    from converters import onnx as onnx_converter
    tflite = run_benchmark(models["float32"], threads=1, warmup=1, runs=3)
    onnx_path = onnx_converter.from_keras(_tiny_classifier(), tmp_path / "m.onnx")
    param, _ = ncnn_converter.convert(onnx_path, [1, 3, 16, 16], True, tmp_path, "m")
    for path, runtime, fp16 in ((param, "ncnn", True), (param, "ncnn", False), (onnx_path, "onnxruntime", False)):
        result = run_benchmark(path, threads=1, warmup=1, runs=3, fp16=fp16)
        assert set(result) == set(tflite) and result["runtime"] == runtime
        assert result["latency_ms"]["n"] == 3 and result["input"]["shape"] == [1, 3, 16, 16]
        if runtime == "ncnn":
            assert result["options"]["use_fp16_arithmetic"] is fp16 and result["options"]["num_threads"] == 1
