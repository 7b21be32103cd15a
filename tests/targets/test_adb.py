"""`--targets adb[:SERIAL]`: artifacts benchmarked on a phone with LiteRT's benchmark_model or ncnn's benchncnn.

No phone can be attached here. What runs: the parsers on output in the two tools' formats (the
lines their sources print: benchmark_model's BenchmarkLoggingListener and stats line, benchncnn's
fprintf of min/max/avg, old and new), the big-core mask, the argument lists, Debian's real adb
(no device, a closed `adb connect` port, a vanished serial), and the partial-record logic when a
device goes away mid-run (the device's commands replaced, since no device can vanish here).
"""
import re

import pytest

from pipeline.errors import ToolError, UserInputError
from pipeline.report.ingest import benchmark_from_record
from pipeline.targets import adb as adb_target
from pipeline.targets.spec import AdbTarget
from tests.targets.test_android_app import WEIRD_SERIAL, adb  # noqa: F401  (fixture: real adb, own server)
from tests.targets.test_host_bench import models  # noqa: F401  (fixture: tiny float32 and int8 .tflite)
from tests.test_cli import assert_one_line_error, deploy

# benchmark_model (LiteRT 1.x / TF 2.1x) on an arm64 phone: one warm-up run, one timed run.
BENCHMARK_MODEL_XNNPACK = """INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Min num runs: [1]
INFO: Num threads: [4]
INFO: Min warmup runs: [3]
INFO: Graph: [/data/local/tmp/mobile-deploy.1a2b/mobilenet_v2_int8-qat.tflite]
INFO: Use xnnpack: [1]
INFO: Loaded model /data/local/tmp/mobile-deploy.1a2b/mobilenet_v2_int8-qat.tflite
INFO: Initialized TensorFlow Lite runtime.
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
VERBOSE: Replacing 66 out of 66 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 1 partitions for subgraph 0.
INFO: The input model file size (MB): 3.61
INFO: Initialized session in 21.84ms.
INFO: Running benchmark for at least 3 iterations and at least 0 seconds but terminate if exceeding 150 seconds.
INFO: count=3 first=4102 curr=3310 min=3298 max=4102 avg=3570 std=376 p5=3298 median=3310 p95=4102

INFO: Running benchmark for at least 1 iterations and at least 0 seconds but terminate if exceeding 150 seconds.
INFO: count=1 first=3287 curr=3287 min=3287 max=3287 avg=3287 std=0 p5=3287 median=3287 p95=3287

INFO: Inference timings in us: Init: 21840, First inference: 4102, Warmup (avg): 3570, Inference (avg): 3287
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=6.42 overall=9.87
"""

# An older benchmark_model (no percentiles, "Peak memory footprint") with XNNPACK off.
BENCHMARK_MODEL_OLD = """STARTING!
Graph: [/data/local/tmp/m.tflite]
Loaded model /data/local/tmp/m.tflite
Initialized session in 3.5ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=12 first=45210 curr=41020 min=40877 max=45210 avg=41512.3 std=1190

Inference timings in us: Init: 3500, First inference: 45210, Warmup (avg): 41512.3, Inference (avg): 41020
Peak memory footprint (MB): init=2.1 overall=14.75
"""

BENCHMARK_MODEL_FAILED = """INFO: Loaded model /data/local/tmp/m.tflite
ERROR: Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'. An older version of this builtin might be supported.
ERROR: Registration failed.
ERROR: Failed to initialize the interpreter
ERROR: Benchmarking failed.
"""

# benchncnn, one custom model: settings, then its line; the second form is the newer one.
BENCHNCNN_OLD = """loop_count = 1
num_threads = 4
powersave = 2
gpu_device = -1
cooling_down = 0
mobilenet_v2_int8.ncnn.param  min =   12.41  max =   12.41  avg =   12.41
"""
BENCHNCNN_NEW = """loop_count = 1
num_threads = 2
powersave = 2
gpu_device = -1
cooling_down = 0
          squeezenet cpu min =    7.95  max =    8.40  avg =    8.12  user =   15.80  sys =    0.21
"""


def test_benchmark_model_output_gives_latency_init_memory_and_the_delegate():
    parsed = adb_target.parse_benchmark_model(BENCHMARK_MODEL_XNNPACK)
    assert parsed["latency_us"]["count"] == 1 and parsed["latency_us"]["avg"] == 3287  # the timed runs, not the warm-up
    assert parsed["latency_us"]["median"] == 3287
    assert (parsed["init_ms"], parsed["memory_mb"]) == (21.84, 9.87)
    assert parsed["delegate"] == "xnnpack" and parsed["delegated_nodes"] == [66, 66]
    old = adb_target.parse_benchmark_model(BENCHMARK_MODEL_OLD)
    assert old["latency_us"] == {"count": 12, "first": 45210, "curr": 41020, "min": 40877, "max": 45210, "avg": 41512.3, "std": 1190}
    assert (old["init_ms"], old["memory_mb"], old["delegate"], old["delegated_nodes"]) == (3.5, 14.75, "none", None)


def test_benchmark_model_errors_are_carried_in_one_line():
    with pytest.raises(ToolError, match=r"^benchmark_model: ERROR: Registration failed\. \| ERROR: Failed to initialize .* \| ERROR: Benchmarking failed\.$"):
        adb_target.parse_benchmark_model(BENCHMARK_MODEL_FAILED)
    with pytest.raises(ToolError, match="no timings"):
        adb_target.parse_benchmark_model("Segmentation fault\n")


def test_benchncnn_output_in_both_formats():
    old = adb_target.parse_benchncnn(BENCHNCNN_OLD)
    assert old["models"] == {"mobilenet_v2_int8.ncnn.param": {"min": 12.41, "max": 12.41, "avg": 12.41}}
    assert old["settings"] == {"loop_count": 1, "num_threads": 4, "powersave": 2, "gpu_device": -1, "cooling_down": 0}
    assert adb_target.parse_benchncnn(BENCHNCNN_NEW)["models"] == {"squeezenet": {"min": 7.95, "max": 8.40, "avg": 8.12}}
    with pytest.raises(ToolError, match="benchncnn: no timings in its output: .*param is too old"):
        adb_target.parse_benchncnn("loop_count = 1\nparam is too old, please regenerate\n")


def test_big_cores_are_the_fastest_ones():
    listing = "".join(f"/sys/devices/system/cpu/cpu{n}/cpufreq/cpuinfo_max_freq {f}\n"
                      for n, f in enumerate([1800000] * 4 + [2400000] * 3 + [3000000]))
    assert adb_target.big_core_mask(adb_target.parse_max_freqs(listing)) == "80"  # cpu7, the prime core
    two_clusters = {0: 1700000, 1: 1700000, 2: 2200000, 3: 2200000}
    assert adb_target.big_core_mask(two_clusters) == "c"
    assert adb_target.big_core_mask({0: 2000000, 1: 2000000}) is None and adb_target.big_core_mask({}) is None


def test_one_sample_per_run_of_the_binary():
    args = adb_target.benchmark_model_args("/d/benchmark_model", "/d/m m.tflite", 4, 5)
    assert args == ["/d/benchmark_model", "--graph=/d/m m.tflite", "--num_threads=4", "--use_xnnpack=true",
                    "--warmup_runs=5", "--warmup_min_secs=0", "--num_runs=1", "--min_secs=0"]
    assert adb_target.benchncnn_args("/d/benchncnn", "/d/m.param", 2, (224, 224, 3)) == [
        "/d/benchncnn", "1", "2", "2", "-1", "0", "param=/d/m.param", "shape=[224,224,3]"]


def test_a_device_that_leaves_mid_run_gives_a_partial_record(tmp_path, monkeypatch):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"tflite")
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"\x7fELF")
    calls = []

    def shell(self, *words, timeout_s=120):
        calls.append(words)
        if "--num_runs=1" in words:
            if sum("--num_runs=1" in c for c in calls) > 2:
                raise adb_target.DeviceGone("R58M: device disconnected (error: device 'R58M' not found)")
            return _done(BENCHMARK_MODEL_XNNPACK)
        if words[:2] == ("rm", "-rf"):
            raise adb_target.DeviceGone("R58M: device disconnected")
        return _done("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq 2000000\n" if words[0] == "sh" else "")

    monkeypatch.setattr(adb_target, "find_adb", lambda: "adb")
    monkeypatch.setattr(adb_target, "resolve_serial", lambda adb, serial: "R58M")
    monkeypatch.setattr(adb_target.AdbDevice, "shell", shell)
    monkeypatch.setattr(adb_target.AdbDevice, "push", lambda self, local, remote: calls.append(("push", local.name, remote)))
    options = adb_target.AdbOptions(benchmark_model=binary, cooldown_s=0)
    record = adb_target.run_benchmark(AdbTarget("R58M"), options, model, threads=1, warmup=3, runs=5)
    assert record["partial"] is True and record["latency_ms"]["n"] == 2 and record["latency_ms"]["p50"] == 3.287
    assert record["delegate"] == "xnnpack" and record["init_ms"] == 21.84 and record["peak_rss_mb"] == 9.87
    assert "device 'R58M' not found" in record["options"]["partial_reason"]
    assert record["options"]["delegated_nodes"] == "66 of 66"
    bench = benchmark_from_record(record)  # report.json accepts the record
    assert bench.partial and bench.target == "adb:R58M" and bench.latency_ms.n == 2 and bench.init_ms == 21.84
    assert calls[-1][:2] == ("rm", "-rf")  # cleanup was attempted even though the device was gone
    pushed = [c for c in calls if c[0] == "push"]
    assert [c[1] for c in pushed] == ["benchmark_model", "m.tflite"] and pushed[0][2].startswith("/data/local/tmp/mobile-deploy.")

    monkeypatch.setattr(adb_target.AdbDevice, "shell", lambda self, *w, **k: (_ for _ in ()).throw(adb_target.DeviceGone("gone")))
    with pytest.raises(adb_target.DeviceGone):  # nothing measured: an error, not an empty record
        adb_target.run_benchmark(AdbTarget("R58M"), options, model, threads=1, warmup=3, runs=5)


def test_a_benchncnn_record_fits_the_report():
    parsed = adb_target.parse_benchncnn(BENCHNCNN_OLD)
    record = adb_target._record("adb:R58M", "ncnn", {"machine": "arm64-v8a", "model": "Pixel 8", "count": 9}, 4, 0,
                                [12.41, 12.5, 12.3], parsed, None, ["benchncnn", "1"])
    bench = benchmark_from_record(record)
    assert bench.runtime == "benchncnn" and bench.init_ms is None and bench.peak_rss_mb is None and not bench.partial
    assert bench.options["benchncnn_powersave"] == 2 and bench.options["benchncnn_num_threads"] == 4
    assert bench.latency_ms.p50 == 12.41 and bench.latency_ms.n == 3 and bench.cpu == "Pixel 8 (arm64-v8a, 9 cores)"


def _done(stdout):
    import subprocess

    return subprocess.CompletedProcess([], 0, stdout, "")


def test_missing_binary_is_named_and_onnx_is_refused(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"x")
    with pytest.raises(UserInputError, match=r"^adb: --adb-benchmark-model FILE is needed to run tflite artifacts"):
        adb_target.run_benchmark(AdbTarget(), adb_target.AdbOptions(), model, 1, 1, 1)
    with pytest.raises(ToolError, match="only TFLite and ncnn artifacts run on Android"):
        adb_target.run_benchmark(AdbTarget(), adb_target.AdbOptions(), tmp_path / "m.onnx", 1, 1, 1)


def test_real_adb_without_a_phone_fails_clearly(adb, models, tmp_path):  # noqa: F811
    model, binary = models["float32"], tmp_path / "benchmark_model"  # a real model: the phone is what is missing
    binary.write_bytes(b"x")
    result = deploy("bench", model, "--target", "adb", "--adb-benchmark-model", binary, "--threads", "1")
    assert_one_line_error(result, 3, "no Android device ready (adb devices: none)")
    result = deploy("bench", model, "--target", "adb")
    assert_one_line_error(result, 2, "adb: --adb-benchmark-model FILE is needed")


def test_real_adb_connect_failure_is_read_from_its_output(adb):  # noqa: F811
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = adb_target.run_adb([adb, "connect", f"127.0.0.1:{port}"])
    assert proc.returncode == 0  # adb says it failed only in its output
    with pytest.raises(ToolError, match=re.escape(f"adb connect 127.0.0.1:{port} failed: ")):
        adb_target.connect(adb, f"127.0.0.1:{port}")


def test_real_adb_says_a_vanished_device_is_gone(adb):  # noqa: F811
    device = adb_target.AdbDevice(adb, WEIRD_SERIAL)
    with pytest.raises(adb_target.DeviceGone, match="device disconnected"):
        device.shell("true")
