"""The recommendation: the fastest artifact that meets the constraints, per target and model."""
import pytest

from pipeline.report.recommend import recommend
from pipeline.report.schema import Constraints
from tests.report.fakes import artifact, bench, report


def _three():
    return report([
        artifact("fp32", 1.0, 0.0, [bench(p50=3.0)]),
        artifact("int8-ptq", 0.3, 2.0, [bench(p50=1.0)]),
        artifact("int8-qat", 0.3, 0.5, [bench(p50=1.2)]),
    ])


def test_without_constraints_the_fastest_wins():
    [rec] = recommend(_three(), Constraints())
    assert (rec.target, rec.model, rec.artifact) == ("host", "m", "m_int8-ptq")
    assert rec.reason.startswith("fastest of 3 artifacts (no constraints set): p50 1.000 ms at 1 thread(s) (3.00x fp32 speed)")


def test_latencies_within_each_others_spread_tie_and_the_smaller_file_wins():
    # The demo's case: dynamic-int8 at 0.101 ms against a fully int8 file at 0.113 ms, their runs overlapping.
    tied = report([
        artifact("dynamic-int8", 0.5, 0.0, [bench(p50=0.101, quartiles=(0.097, 0.112))]),
        artifact("int8-ptq", 0.3, 0.3, [bench(p50=0.113, quartiles=(0.108, 0.118))]),
        artifact("fp32", 1.0, 0.0, [bench(p50=0.200, quartiles=(0.190, 0.210))]),
    ])
    [rec] = recommend(tied, Constraints())
    assert rec.artifact == "m_int8-ptq"
    assert rec.reason.startswith("smallest of the 2 tied as fastest (p25-p75 latencies overlap) of 3 artifacts (no constraints set)")
    # Apart (the runs do not overlap), the faster one wins whatever its size.
    apart = report([
        artifact("dynamic-int8", 0.5, 0.0, [bench(p50=0.101, quartiles=(0.099, 0.103))]),
        artifact("int8-ptq", 0.3, 0.3, [bench(p50=0.113, quartiles=(0.110, 0.116))]),
    ])
    [rec] = recommend(apart, Constraints())
    assert rec.artifact == "m_dynamic-int8" and rec.reason.startswith("fastest of 2 artifacts")


def test_an_accuracy_limit_moves_the_pick_to_the_next_fastest():
    [rec] = recommend(_three(), Constraints(max_accuracy_drop=1.0))
    assert rec.artifact == "m_int8-qat"
    assert "fastest of 2 artifacts meeting top-1 drop <= 1 points; 1 other(s) miss them" in rec.reason
    assert rec.constraints.max_accuracy_drop == 1.0


def test_size_and_latency_limits_combine():
    [rec] = recommend(_three(), Constraints(max_size_mb=0.5, max_latency_ms=1.1))
    assert rec.artifact == "m_int8-ptq"
    [rec] = recommend(_three(), Constraints(max_size_mb=2, max_latency_ms=2.9))
    assert rec.artifact == "m_int8-ptq"


def test_when_nothing_qualifies_the_reason_says_what_each_missed():
    [rec] = recommend(_three(), Constraints(max_accuracy_drop=0.1, max_latency_ms=2.0))
    assert rec.artifact is None
    assert rec.reason == (
        "none of 3 artifacts meets top-1 drop <= 0.1 points, p50 <= 2 ms: m_fp32 p50 3.000 ms > 2; "
        "m_int8-ptq drop 2.00 points > 0.1; m_int8-qat drop 0.50 points > 0.1"
    )


def test_an_int8_artifact_computing_in_float_is_never_recommended():
    r = report([
        artifact("fp32", 1.0, 0.0, [bench(p50=3.0)]),
        artifact("int8-ptq", 0.3, 0.0, [bench(p50=1.0)], fully_int8=False),
    ])
    assert recommend(r, Constraints())[0].artifact == "m_fp32"


def test_ties_go_to_the_smaller_file():
    r = report([artifact("fp32", 1.0, 0.0, [bench(p50=1.0)]), artifact("fp16", 0.5, 0.0, [bench(p50=1.0)])])
    assert recommend(r, Constraints())[0].artifact == "m_fp16"


def test_latency_is_judged_at_the_fewest_threads_measured():
    r = report([
        artifact("fp32", 1.0, 0.0, [bench(p50=2.0, threads=1), bench(p50=0.5, threads=4)]),
        artifact("fp16", 0.5, 0.0, [bench(p50=1.5, threads=1), bench(p50=0.9, threads=4)]),
    ])
    [rec] = recommend(r, Constraints(max_latency_ms=1.0))
    assert rec.artifact is None and "m_fp32 p50 2.000 ms > 1" in rec.reason


def test_emulated_targets_rank_by_size_and_ignore_the_latency_limit():
    r = report([
        artifact("fp32", 1.0, 0.0, [bench(p50=1.0), bench("arm64-emu", p50=50.0, emulated=True, max_abs=0.0)]),
        artifact("int8-qat", 0.3, 0.5, [bench(p50=2.0), bench("arm64-emu", p50=400.0, emulated=True, max_abs=0.01)]),
    ])
    host, emu = recommend(r, Constraints(max_latency_ms=10.0))
    assert (host.target, host.artifact) == ("host", "m_fp32")
    assert (emu.target, emu.artifact) == ("arm64-emu", "m_int8-qat")
    assert emu.reason.startswith("smallest of 2 artifacts (no constraints set)")
    assert "max softmax-output difference to the host 0.01" in emu.reason and "emulated timings say nothing about device speed" in emu.reason


def test_one_recommendation_per_target_and_model_host_first():
    r = report([
        artifact("fp32", 1.0, 0.0, [bench("ssh:pi@board", p50=9.0), bench(p50=1.0)], model="a"),
        artifact("fp32", 2.0, 0.0, [bench(p50=2.0)], model="b"),
    ])
    recs = recommend(r, Constraints())
    assert [(x.target, x.model, x.artifact) for x in recs] == [
        ("host", "a", "a_fp32"), ("host", "b", "b_fp32"), ("ssh:pi@board", "a", "a_fp32")]


def _expected_pick(artifacts):
    """The recommendation's rule, restated: the fastest at 1 thread, and among the artifacts whose
    p25-p75 range overlaps its range, the smallest file (then the smallest drop, then the lower p50)."""
    def one_thread(a):
        return next(b.latency_ms for b in a.benchmarks if b.threads == 1)

    fastest = min(artifacts, key=lambda a: (one_thread(a).p50, a.size_bytes))
    tied = [a for a in artifacts if one_thread(a).p25 <= one_thread(fastest).p75 and one_thread(fastest).p25 <= one_thread(a).p75]
    return min(tied, key=lambda a: (a.size_bytes, a.accuracy_drop_points, one_thread(a).p50)).id


@pytest.mark.slow
def test_recommendation_of_a_real_build_under_a_size_limit(tiny_run):
    report_, _ = tiny_run
    limit = sorted(a.size_bytes for a in report_.artifacts)[2] / 1e6  # the 3 smallest artifacts qualify
    [rec] = recommend(report_, Constraints(max_size_mb=limit))
    qualifying = [a for a in report_.artifacts if a.size_bytes / 1e6 <= limit]
    assert len(qualifying) >= 3
    assert rec.artifact == _expected_pick(qualifying)
    [none] = recommend(report_, Constraints(max_size_mb=1e-6))
    assert none.artifact is None and none.reason.startswith("none of 5 artifacts meets size <= 1e-06 MB")
    # the build stored its own (unconstrained) recommendation: the fastest at 1 thread, ties to the smaller
    [stored] = report_.recommendations
    assert stored.artifact == _expected_pick(report_.artifacts)
    assert stored.constraints == Constraints()


def test_constraint_flags_and_keys_are_validated_by_name(tmp_path):
    from pipeline.config import load_config
    from pipeline.errors import UserInputError

    with pytest.raises(UserInputError, match=r"^--max-size: Input should be greater than 0"):
        load_config(overrides={"max_size_mb": -1})
    with pytest.raises(UserInputError, match=r"^--max-latency: "):
        load_config(overrides={"max_latency_ms": 0})
    config = tmp_path / "deploy.yaml"
    config.write_text("max_size_mb: 3.5\nmax_latency_ms: 0.2\n")
    loaded = load_config(config)
    assert (loaded.max_size_mb, loaded.max_latency_ms) == (3.5, 0.2)


@pytest.mark.slow
def test_build_flags_reach_the_stored_recommendation(tiny_run, trained_model_file, image_folder, tmp_path):
    import shutil
    import subprocess
    import sys

    from pipeline.report.schema import Report

    _, out = tiny_run
    again = tmp_path / "again"
    shutil.copytree(out, again)  # the cache comes along: constraints change no stage, so nothing reruns
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "build", "--model", str(trained_model_file), "--data", str(image_folder),
         "--out", str(again), "--qat-epochs", "1", "--calibration-images", "12", "--warmup", "1", "--runs", "5",
         "--threads", "1,2", "--val-fraction", "0.25", "--formats", "tflite", "--max-size", "0.000001", "--max-latency", "5"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "[run]" not in result.stderr
    [rec] = Report.model_validate_json((again / "report.json").read_text()).recommendations
    assert rec.artifact is None and rec.constraints == Constraints(max_size_mb=1e-6, max_latency_ms=5)
