"""`deploy compare`: the rules on hand-made pairs, then real runs through the command line."""
import json
import shutil
import subprocess
import sys

import pytest

from pipeline.report.compare import IMPROVED, REGRESSION, UNCHANGED, Thresholds, compare, latency_limit
from pipeline.report.schema import Report
from tests.report.fakes import artifact, bench, latency, report

DEPLOY = [sys.executable, "-m", "pipeline.cli"]


def _verdicts(changes):
    return {(c.artifact, c.metric): c.verdict for c in changes if c.verdict}


def test_latency_change_must_beat_the_relative_threshold_and_the_noise():
    steady, noisy = latency(1.0, p90=1.02), latency(1.0, p90=1.5)
    # steady runs: the 15 % threshold decides
    assert latency_limit(steady, steady, Thresholds()) == pytest.approx(0.15)
    # noisy runs: 2 x hypot(0.5/1.2816, 0.5/1.2816) = 1.10 ms, far more than 10 %
    assert latency_limit(noisy, noisy, Thresholds()) == pytest.approx(2 * (2 ** 0.5) * 0.5 / 1.2816)

    before = report([artifact("fp32", 1.0, 0.0, [bench(p50=1.0, p90=1.02)])])
    slower = report([artifact("fp32", 1.0, 0.0, [bench(p50=1.2, p90=1.22)])])
    assert _verdicts(compare(before, slower)) == {("m_fp32", "p50 ms on host, 1 thread(s)"): REGRESSION}
    assert _verdicts(compare(slower, before)) == {("m_fp32", "p50 ms on host, 1 thread(s)"): IMPROVED}

    noisy_before = report([artifact("fp32", 1.0, 0.0, [bench(p50=1.0, p90=1.5)])])
    noisy_after = report([artifact("fp32", 1.0, 0.0, [bench(p50=1.5, p90=2.0)])])
    assert _verdicts(compare(noisy_before, noisy_after)) == {}  # +50 %, but within the measured spread
    assert _verdicts(compare(noisy_before, noisy_after, Thresholds(latency_k=0.5))) != {}


def test_only_the_fewest_threads_are_judged_unless_asked():
    before = report([artifact("fp32", 1.0, 0.0, [bench(p50=1.0), bench(p50=0.6, threads=2)])])
    after = report([artifact("fp32", 1.0, 0.0, [bench(p50=1.0), bench(p50=6.0, threads=2)])])
    [two] = [c for c in compare(before, after) if c.metric == "p50 ms on host, 2 thread(s)"]
    assert (two.verdict, two.note) == (UNCHANGED, "more threads: not judged (--all-threads)")
    assert _verdicts(compare(before, after, Thresholds(all_threads=True))) == {("m_fp32", "p50 ms on host, 2 thread(s)"): REGRESSION}


def test_accuracy_size_int8_and_missing_artifacts():
    before = report([
        artifact("fp32", 1.0, 0.0, [bench()]),
        artifact("int8-ptq", 0.30, 1.0, [bench()]),
        artifact("int8-qat", 0.30, 0.5, [bench()]),
    ])
    after = report([
        artifact("fp32", 1.0, 0.5, [bench()]),  # 0.5 points: within 1 point
        artifact("int8-ptq", 0.33, 2.5, [bench()]),  # 1.5 points lower, 10 % larger
        artifact("fp16", 0.5, 0.0, [bench()]),  # new
    ])
    changes = compare(before, after)
    assert _verdicts(changes) == {
        ("m_int8-ptq", "top-1 %"): REGRESSION, ("m_int8-ptq", "size MB"): REGRESSION, ("m_int8-qat", "artifact"): REGRESSION,
    }
    assert [c.note for c in changes if c.artifact == "m_fp16"] == ["new in RUN_B"]
    assert _verdicts(compare(before, after, Thresholds(accuracy_points=2, size_pct=20))) == {("m_int8-qat", "artifact"): REGRESSION}

    lost_int8 = report([artifact("int8-ptq", 0.30, 1.0, [bench()], fully_int8=False)])
    assert _verdicts(compare(report([before.artifacts[1]]), lost_int8)) == {("m_int8-ptq", "int8 check"): REGRESSION}


def test_emulated_timings_are_shown_not_judged_and_unmatched_benchmarks_are_listed():
    before = report([artifact("fp32", 1.0, 0.0, [bench(p50=1.0), bench("arm64-emu", p50=100, emulated=True)])])
    after = report([artifact("fp32", 1.0, 0.0, [bench(p50=1.0, threads=2), bench("arm64-emu", p50=300, emulated=True)])])
    changes = {c.metric: c for c in compare(before, after)}
    assert changes["p50 ms on arm64-emu, 1 thread(s)"].verdict == UNCHANGED
    assert changes["p50 ms on arm64-emu, 1 thread(s)"].note == "emulated: not judged"
    assert changes["p50 ms on host, 1 thread(s)"].note == "not measured in RUN_B"


def deploy(*args):
    return subprocess.run([*DEPLOY, *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_two_runs_of_the_same_build_are_quiet(tiny_run, trained_model_file, image_folder, tmp_path):
    from pipeline.build import build
    from pipeline.config import load_config
    from tests.report.conftest import FAST

    _, out = tiny_run
    again = tmp_path / "again"
    shutil.copytree(out, again)  # cache included: the second build reuses every stage
    config = load_config(overrides={"models": [str(trained_model_file)], "data": str(image_folder), "out": again, **FAST})
    build(config)
    result = deploy("compare", out, again)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "REGRESSION" not in result.stdout and "improved" not in result.stdout
    assert "0 regression(s), 0 improvement(s)" in result.stdout
    assert result.stdout.count("| tiny_") == 5 * (2 + 2)  # per artifact: top-1, size, p50 at 1 and 2 threads


@pytest.mark.slow
def test_an_injected_worse_artifact_is_flagged_and_fails(tiny_run, tmp_path):
    _, out = tiny_run
    worse = json.loads((out / "report.json").read_text())
    victim = next(a for a in worse["artifacts"] if a["precision"] == "int8-qat")
    victim["accuracy"]["top1"] -= 0.05  # 5 points
    victim["size_bytes"] = int(victim["size_bytes"] * 1.5)
    lat = victim["benchmarks"][0]["latency_ms"]
    # slower by a fixed amount (same spread): well past 10 % and past 2 combined spreads, however noisy the run was
    slower = 3 * lat["p50"] + 5 * (lat["p90"] - lat["p50"])
    lat.update({k: lat[k] + slower for k in ("p50", "p90", "p99", "mean")})
    run_b = tmp_path / "worse"
    run_b.mkdir()
    (run_b / "report.json").write_text(json.dumps(worse))
    Report.model_validate(worse)

    result = deploy("compare", out, run_b)
    assert result.returncode == 1, result.stdout + result.stderr
    flagged = [line for line in result.stdout.splitlines() if "REGRESSION" in line]
    assert len(flagged) == 3 and all(victim["id"] in line for line in flagged), result.stdout
    assert any("top-1 %" in line and "-5.00 points" in line for line in flagged)
    assert any("size MB" in line and "+50.0 %" in line for line in flagged)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"3 regression(s) from {out} to {run_b}, first {victim['id']} top-1 %: -5.00 points, limit 1 points" in errors[0]

    as_json = deploy("compare", out, run_b, "--json")
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert {r["metric"] for r in records if r["verdict"] == REGRESSION} == {"top-1 %", "size MB", "p50 ms on host, 1 thread(s)"}
    loose = deploy("compare", out, run_b, "--accuracy-points", "6", "--size-pct", "60", "--latency-k", "1000")
    assert loose.returncode == 0, loose.stdout


def test_compare_without_a_report_exits_2(tmp_path):
    result = deploy("compare", tmp_path, tmp_path)
    assert result.returncode == 2 and "report.json: cannot read report" in result.stderr and "Traceback" not in result.stderr
