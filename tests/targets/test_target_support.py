"""Targets this version cannot benchmark yet are refused up front, with what to do instead."""
import pytest

from pipeline.errors import ToolError
from pipeline.targets.bench import require_benchmarkable
from pipeline.targets.spec import parse_target
from tests.test_cli import assert_one_line_error, deploy


@pytest.mark.parametrize("name, says", [("arm64-emu", "not set up"), ("armv7-emu", "not set up")])
def test_unsupported_targets_fail_before_any_work(name, says, tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOY_EMU_HOME", str(tmp_path))
    with pytest.raises(ToolError, match=f"^--targets {name}: .*{says}"):
        require_benchmarkable(parse_target(name))
    # deploy build checks before reading data or training: a missing data folder is not reached.
    result = deploy("build", "--targets", f"host,{name}", "--out", tmp_path / "o")
    assert_one_line_error(result, 3, says)
    assert not (tmp_path / "o").exists()


def test_bench_names_a_bad_target_value(tmp_path):
    artifact = tmp_path / "m.tflite"
    artifact.write_bytes(b"x")
    assert_one_line_error(deploy("bench", artifact, "--target", "ssh:pi@bad host"), 2, "--target 'ssh:pi@bad host': host 'bad host'")
