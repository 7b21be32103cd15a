"""Benchmark records from the demo apps go into report.json and the reports as their own target."""
import json

import pytest

from pipeline import report as report_files
from pipeline.errors import UserInputError
from pipeline.report.ingest import add_app_benchmark
from tests.conftest import run_kotlin_tests
from tests.test_cli import assert_one_line_error, deploy


@pytest.fixture
def run_copy(app_run, tmp_path):
    import shutil

    return shutil.copytree(app_run, tmp_path / "run")


@pytest.fixture(scope="module")
def kotlin_record(golden_dirs, kotlin_core_jar, tmp_path_factory):
    """A record written by the app's own code path (Benchmark + LatencyStats + BenchmarkRecord) on this JVM."""
    out = tmp_path_factory.mktemp("kotlin-record") / "benchmark.json"
    proc = run_kotlin_tests(kotlin_core_jar, golden_dirs["int8-ptq"], out)
    assert proc.returncode == 0, proc.stdout
    return out


@pytest.mark.slow
def test_app_record_is_accepted_by_deploy_report(run_copy, kotlin_record):
    record = json.loads(kotlin_record.read_text())
    # Every key of the device runner's record is there, plus target and artifact.
    expected = {"runner_version", "runtime", "runtime_version", "delegate", "threads", "warmup", "latency_ms",
                "init_ms", "peak_rss_mb", "cpu", "input", "target", "artifact"}
    assert expected <= set(record)
    result = deploy("bench", run_copy, "--app-result", kotlin_record)
    assert result.returncode == 0, result.stderr
    assert "android-app threads=1" in result.stdout
    report = report_files.load(run_copy)
    artifact = next(a for a in report.artifacts if a.id == record["artifact"])
    [app] = [b for b in artifact.benchmarks if b.target == "android-app"]
    assert app.latency_ms.p50 == record["latency_ms"]["p50"] and app.latency_ms.n == 30
    assert "android-app" in (run_copy / "report.md").read_text()
    # deploy report rebuilds report.md from the ingested report.json.
    (run_copy / "report.md").unlink()
    assert deploy("report", run_copy).returncode == 0
    assert f"| {artifact.id} | android-app |" in (run_copy / "report.md").read_text()
    # The same record again replaces its row instead of adding one.
    assert deploy("bench", run_copy, "--app-result", kotlin_record).returncode == 0
    again = report_files.load(run_copy)
    assert sum(b.target == "android-app" for a in again.artifacts for b in a.benchmarks) == 1


@pytest.mark.slow
def test_bad_records_are_refused_with_the_reason(run_copy, kotlin_record, tmp_path):
    record = json.loads(kotlin_record.read_text())
    cases = {
        "unknown artifact": ({**record, "artifact": "other"}, "artifact 'other' is not in"),
        "host target": ({**record, "target": "host"}, "an app record has one of android-app, ios-app"),
        "missing latency": ({k: v for k, v in record.items() if k != "latency_ms"}, "lacks 'latency_ms'"),
        "bad latency": ({**record, "latency_ms": {"p50": "fast"}}, "invalid benchmark record (latency_ms"),
    }
    for name, (bad, message) in cases.items():
        with pytest.raises(UserInputError, match=message.replace("(", r"\(")):
            add_app_benchmark(run_copy, bad, name)
    path = tmp_path / "bad.json"
    path.write_text("[1, 2")
    assert_one_line_error(deploy("bench", run_copy, "--app-result", path), 2, "bad.json: not JSON")
    assert_one_line_error(deploy("bench", run_copy, "--app"), 2, "--app runs the Android demo app on a phone: add --target adb")
