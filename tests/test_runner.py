import json
import os
from pathlib import Path

import pytest

from pipeline.runner import LINEAGE, Runner
from pipeline.stages.base import Stage, StageConfig


class CountConfig(StageConfig):
    value: int


class CountStage(Stage):
    """Writes a file and counts how often it really ran."""

    name = "count-test"
    tools = ("numpy",)
    Config = CountConfig
    calls = 0

    def run(self, config, inputs, workdir: Path):
        CountStage.calls += 1
        (workdir / "out.txt").write_text(str(config.value))
        return {"value": config.value, "parents": sorted(inputs)}


class CrashStage(Stage):
    name = "crash-test"

    def run(self, config, inputs, workdir: Path):
        (workdir / "half-written.tflite").write_bytes(b"partial")
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-write


@pytest.fixture(autouse=True)
def reset_calls():
    CountStage.calls = 0


def test_second_identical_run_is_served_from_the_cache(tmp_path):
    first = Runner(tmp_path).run(CountStage(), CountConfig(value=1))
    second = Runner(tmp_path).run(CountStage(), CountConfig(value=1))
    assert CountStage.calls == 1
    assert not first.cached and second.cached
    assert second.key == first.key and second.result == {"value": 1, "parents": []}
    assert second.path("out.txt").read_text() == "1"


def test_force_recomputes(tmp_path):
    Runner(tmp_path).run(CountStage(), CountConfig(value=1))
    again = Runner(tmp_path, force=True).run(CountStage(), CountConfig(value=1))
    assert CountStage.calls == 2 and not again.cached


def test_key_depends_on_config_inputs_and_external_content(tmp_path):
    runner = Runner(tmp_path)
    base = runner.run(CountStage(), CountConfig(value=1))
    keys = {
        base.key,
        runner.run(CountStage(), CountConfig(value=2)).key,
        runner.run(CountStage(), CountConfig(value=1), external={"data": "abc"}).key,
        runner.run(CountStage(), CountConfig(value=1), inputs={"parent": base}).key,
    }
    assert len(keys) == 4 and CountStage.calls == 4


def test_lineage_records_parents_config_tools_and_time(tmp_path):
    runner = Runner(tmp_path)
    parent = runner.run(CountStage(), CountConfig(value=1))
    child = runner.run(CountStage(), CountConfig(value=2), inputs={"model": parent}, label="child")
    lineage = json.loads(child.path(LINEAGE).read_text())
    assert lineage["parents"] == {"model": {"stage": "count-test", "key": parent.key}}
    assert lineage["config"] == {"value": 2}
    assert lineage["tools"]["numpy"][0].isdigit()
    assert lineage["seconds"] >= 0 and lineage["started"]


def test_interrupted_stage_leaves_nothing_a_later_run_trusts(tmp_path):
    runner = Runner(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        runner.run(CrashStage(), StageConfig())
    assert not list((tmp_path / "cache" / "crash-test").iterdir())  # temp folder removed, nothing renamed in


def test_folder_without_lineage_is_recomputed(tmp_path):
    """A folder that lost its completion marker (e.g. a crash in an older version) is not trusted."""
    first = Runner(tmp_path).run(CountStage(), CountConfig(value=1))
    first.path(LINEAGE).unlink()
    again = Runner(tmp_path).run(CountStage(), CountConfig(value=1))
    assert not again.cached and CountStage.calls == 2


def test_stages_register_by_name():
    assert Stage.registry["count-test"] is CountStage
    import pipeline.build  # noqa: F401  (imports every pipeline stage)

    assert {"data", "train", "import", "reference", "qat", "convert", "verify", "bench"} <= set(Stage.registry)


def test_cache_key_covers_the_code_a_stage_reaches_and_nothing_else():
    from pipeline.runner import reachable_modules
    from pipeline.stages.bench import BenchStage

    train = reachable_modules("pipeline.stages.model")
    assert "pipeline.models.architectures" in train  # imported lazily inside a function
    assert "converters.tflite" not in train and "pipeline.report" not in train and "pipeline.cli" not in train
    assert "converters.tflite" in reachable_modules("pipeline.stages.convert")
    assert "pipeline.targets.device_runner" in reachable_modules(BenchStage.__module__, *BenchStage.scripts)


def test_temp_folder_of_a_dead_or_zombie_process_is_removed(tmp_path):
    import subprocess
    import time

    zombie = subprocess.Popen(["true"])  # exited, not yet reaped: os.kill(pid, 0) still succeeds
    time.sleep(0.5)
    stage_dir = tmp_path / "cache" / "count-test"
    stage_dir.mkdir(parents=True)
    (stage_dir / f".tmp-abc-{zombie.pid}").mkdir()
    (stage_dir / f".tmp-def-{os.getpid()}").mkdir()  # this process: alive, kept
    Runner(tmp_path)
    assert [p.name for p in stage_dir.iterdir()] == [f".tmp-def-{os.getpid()}"]
    zombie.wait()
