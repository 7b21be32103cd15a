"""The plan (nodes with keys before anything runs) and the scheduler that runs it, on toy stages."""
import json
import time
from pathlib import Path

import pytest

from pipeline.errors import ToolError
from pipeline.executors.local import InProcessBackend, PoolBackend
from pipeline.executors.scheduler import Scheduler
from pipeline.plan import MACHINE, Failed, Plan, Skipped, When, describe
from pipeline.runner import LINEAGE, Runner
from tests.toy_stages import DieOnceConfig, DieOnceStage, FailStage, KerasFitNameConfig, KerasNameConfig, KerasNameStage, SleepConfig, SleepStage


def _scheduler(tmp_path: Path, jobs: int = 1) -> Scheduler:
    runner = Runner(tmp_path)
    backend = InProcessBackend(runner.cache) if jobs == 1 else PoolBackend(runner.cache, jobs, 1)
    return Scheduler(runner, backend)


def _run_on_pool(root: Path, plan: Plan, jobs: int = 2) -> dict:
    runner = Runner(root)
    scheduler = Scheduler(runner, PoolBackend(runner.cache, jobs, 1))  # a pool even of one worker
    try:
        return scheduler.run(plan.nodes)
    finally:
        scheduler.close()


def _intervals(log: Path) -> dict[int, dict]:
    return {r["value"]: r for r in map(json.loads, log.read_text().splitlines())}


def test_plan_keys_equal_the_runner_keys_and_reuse_a_cache_the_runner_wrote(tmp_path):
    """The keys of the pre-plan code path (Runner.run, stage after stage): a cache it wrote is reused as is."""
    runner = Runner(tmp_path)
    a = runner.run(SleepStage(), SleepConfig(value=1), external={"data": "abc"})
    b = runner.run(SleepStage(), SleepConfig(value=2), {"x": a})
    plan = Plan()
    na = plan.node(SleepStage(), SleepConfig(value=1), external={"data": "abc"})
    nb = plan.node(SleepStage(), SleepConfig(value=2), {"x": na})
    assert (na.key, nb.key) == (a.key, b.key)

    scheduler = _scheduler(tmp_path)
    outcomes = scheduler.run(plan.nodes)
    assert scheduler.ran == [] and all(outcomes[n.key].cached for n in plan.nodes)
    assert describe(plan, lambda n: scheduler.runner.cached(n.stage, n.key))[0] == "plan: 2 stages, 2 cached, 0 to run"


def test_the_same_work_asked_twice_is_one_node():
    plan = Plan()
    first = plan.node(SleepStage(), SleepConfig(value=1), label="a")
    assert plan.node(SleepStage(), SleepConfig(value=1), label="b") is first and len(plan) == 1


def test_a_false_condition_skips_the_node_and_what_depends_on_it(tmp_path):
    plan = Plan()
    parent = plan.node(SleepStage(), SleepConfig(value=1))
    big = plan.node(SleepStage(), SleepConfig(value=2), {"p": parent}, when=When(parent, lambda r: r["value"] > 5, "value > 5"))
    child = plan.node(SleepStage(), SleepConfig(value=3), {"p": big})
    small = plan.node(SleepStage(), SleepConfig(value=4), {"p": parent}, when=When(parent, lambda r: r["value"] < 5, "value < 5"))
    outcomes = _scheduler(tmp_path).run(plan.nodes)
    assert isinstance(outcomes[big.key], Skipped) and isinstance(outcomes[child.key], Skipped)
    assert outcomes[small.key].result["value"] == 4
    assert not (tmp_path / "cache" / "toy-sleep" / big.key[:20]).exists()


def test_a_tool_failure_costs_its_dependents_only_and_a_fatal_one_stops_the_build(tmp_path):
    plan = Plan()
    bad = plan.node(FailStage(), SleepConfig(value=1))
    below = plan.node(SleepStage(), SleepConfig(value=2), {"p": bad})
    other = plan.node(SleepStage(), SleepConfig(value=3))
    outcomes = _scheduler(tmp_path).run(plan.nodes)
    assert isinstance(outcomes[bad.key], Failed) and outcomes[below.key] == outcomes[bad.key]
    assert "toy tool failed on 1" in str(outcomes[below.key].error)
    assert outcomes[other.key].result["value"] == 3
    assert not list((tmp_path / "cache" / "toy-fail").iterdir())  # the half-written file went with its temp folder

    fatal = Plan()
    fatal.node(FailStage(), SleepConfig(value=5), fatal=True)
    with pytest.raises(ToolError, match="toy tool failed on 5"):
        _scheduler(tmp_path).run(fatal.nodes)


def test_workers_run_independent_stages_side_by_side_and_a_machine_lease_alone(tmp_path):
    log = tmp_path / "log.jsonl"
    plan = Plan()
    for value in (1, 2):
        plan.node(SleepStage(), SleepConfig(value=value, seconds=1.5, log=str(log)))
    bench = plan.node(SleepStage(), SleepConfig(value=3, seconds=0.3, log=str(log)), lease=MACHINE)
    for value in (4, 5):
        plan.node(SleepStage(), SleepConfig(value=value, seconds=0.5, log=str(log)))
    _run_on_pool(tmp_path, plan)
    runs = _intervals(log)
    assert runs[1]["pid"] != runs[2]["pid"]
    assert runs[2]["start"] < runs[1]["end"] and runs[1]["start"] < runs[2]["end"]  # side by side
    alone = runs[3]
    for value in (1, 2, 4, 5):  # nothing else ran while the leased stage did
        assert runs[value]["end"] <= alone["start"] or runs[value]["start"] >= alone["end"]
    lineage = json.loads((tmp_path / "cache" / "toy-sleep" / bench.key[:20] / LINEAGE).read_text())
    assert lineage["isolation"].startswith("alone") and lineage["executor"] == "local pool of 2"


def test_a_worker_s_runtimes_get_its_thread_budget(tmp_path):
    plan = Plan()
    node = plan.node(SleepStage(), SleepConfig(value=1))
    results = _run_on_pool(tmp_path, plan)  # 2 workers, 1 thread each
    assert results[node.key].result["threads"] == 1


def test_a_stage_that_pins_its_threads_gets_them_in_any_worker(tmp_path):
    plan = Plan()
    pinned = plan.node(SleepStage(), SleepConfig(value=1, tf_threads=3))
    budget = plan.node(SleepStage(), SleepConfig(value=2, tf_threads=1))
    results = _run_on_pool(tmp_path, plan)  # workers have 1 thread each: value 1 runs in a fresh process with 3
    assert results[pinned.key].result["threads"] == 3 and results[budget.key].result["threads"] == 1
    assert results[pinned.key].result["pid"] != results[budget.key].result["pid"]


def test_a_pool_worker_starts_each_stage_with_a_fresh_keras_session(tmp_path):
    plan = Plan()
    first = plan.node(KerasNameStage(), KerasNameConfig(value=1))
    second = plan.node(KerasNameStage(), KerasNameConfig(value=2), inputs={"first": first})
    results = _run_on_pool(tmp_path, plan, jobs=1)
    assert results[first.key].result["pid"] == results[second.key].result["pid"]  # one worker ran both
    assert results[first.key].result["layer"] == results[second.key].result["layer"] == "dense"


def test_the_driver_starts_a_stage_after_training_with_a_fresh_keras_session(tmp_path):
    plan = Plan()
    first = plan.node(KerasNameStage(), KerasFitNameConfig(value=1))
    second = plan.node(KerasNameStage(), KerasNameConfig(value=2), inputs={"first": first})
    results = _scheduler(tmp_path).run(plan.nodes)
    assert results[first.key].result["pid"] == results[second.key].result["pid"]  # both ran in the driver
    # The driver may hold Keras state from earlier tests (the first name is then "dense_N"); the second is fresh.
    assert results[second.key].result["layer"] == "dense"


def test_a_stage_that_asks_for_every_core_runs_alone(tmp_path):
    """On two one-thread workers, a stage pinned to two threads (a training on 224x224 inputs) runs with
    nothing beside it; without the rule the 3-second stage would start beside it on the other worker."""
    log = tmp_path / "log.jsonl"
    plan = Plan()
    plan.node(SleepStage(), SleepConfig(value=1, seconds=0.8, log=str(log), tf_threads=2))
    for value in (2, 3):
        plan.node(SleepStage(), SleepConfig(value=value, seconds=3.0, log=str(log)))
    _run_on_pool(tmp_path, plan)
    runs = _intervals(log)
    assert all(runs[1]["end"] <= runs[v]["start"] for v in (2, 3))


def test_a_device_is_leased_one_stage_at_a_time(tmp_path):
    log = tmp_path / "log.jsonl"
    plan = Plan()
    for value in (1, 2):
        plan.node(SleepStage(), SleepConfig(value=value, seconds=0.8, log=str(log)), lease="device:ssh:pi@board:22")
    plan.node(SleepStage(), SleepConfig(value=3, seconds=0.8, log=str(log)))
    _run_on_pool(tmp_path, plan)
    runs = _intervals(log)
    assert runs[1]["end"] <= runs[2]["start"] or runs[2]["end"] <= runs[1]["start"]
    assert runs[3]["start"] < max(runs[1]["end"], runs[2]["end"])  # host work went on beside the device


def test_a_worker_killed_mid_stage_leaves_nothing_trusted_and_the_stage_is_retried(tmp_path):
    plan = Plan()
    node = plan.node(DieOnceStage(), DieOnceConfig(marker=str(tmp_path / "attempted")))
    other = plan.node(SleepStage(), SleepConfig(value=7, seconds=0.2))
    outcomes = _run_on_pool(tmp_path / "out", plan)
    first_pid = int((tmp_path / "attempted").read_text())
    result = outcomes[node.key]
    assert result.result["pid"] != first_pid and result.path("out.bin").read_bytes() == b"whole"
    assert outcomes[other.key].result["value"] == 7
    # The killed attempt's temp folder is there but untrusted; the next run deletes it.
    stage_dir = tmp_path / "out" / "cache" / "toy-die-once"
    assert [p.name for p in stage_dir.glob(".tmp-*")] == [f".tmp-{node.key[:20]}-{first_pid}"]
    Runner(tmp_path / "out")
    assert not list(stage_dir.glob(".tmp-*"))


def test_parallel_workers_cut_wall_time(tmp_path):
    plan = Plan()
    for value in range(5):
        plan.node(SleepStage(), SleepConfig(value=value, seconds=2.0))
    scheduler = _scheduler(tmp_path, jobs=2)
    try:
        scheduler.run(plan.nodes[:1])  # workers started and warm
        t0 = time.perf_counter()
        scheduler.run(plan.nodes)
        seconds = time.perf_counter() - t0
    finally:
        scheduler.close()
    assert seconds < 7.0  # four 2-second stages on two workers: two rounds (one after another: at least 8 s)


def test_the_dry_run_skips_what_a_cached_parent_already_ruled_out(tmp_path):
    plan = Plan()
    parent = plan.node(SleepStage(), SleepConfig(value=1))
    ruled_out = plan.node(SleepStage(), SleepConfig(value=2), {"p": parent}, when=When(parent, lambda r: r["value"] > 5, "value > 5"))
    plan.node(SleepStage(), SleepConfig(value=3), {"p": ruled_out})
    plan.node(SleepStage(), SleepConfig(value=4), {"p": parent})
    runner = Runner(tmp_path)
    assert describe(plan, lambda n: runner.cached(n.stage, n.key))[0] == "plan: 4 stages, 0 cached, 4 to run"
    Scheduler(runner, InProcessBackend(runner.cache)).run(plan.nodes[:1])
    lines = describe(plan, lambda n: runner.cached(n.stage, n.key))
    assert lines[0] == "plan: 4 stages, 1 cached, 1 to run, 2 skipped"
    assert [line.split()[0] for line in lines[1:]] == ["cached", "skip", "skip", "run"]
    assert lines[2].endswith("(if value > 5)")
