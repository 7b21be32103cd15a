"""The ssh target against a real OpenSSH server on loopback, with the runner executing for real.

The sshd is Debian's, started on a free port with its own config and throwaway keys (the `sshd`
fixture, tests/conftest.py). The board's Python is this venv's (--ssh-python), so the runner has
numpy and ai-edge-litert.
"""
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.errors import ToolError
from pipeline.targets import ssh
from pipeline.targets.host import BenchError
from pipeline.targets.spec import SshTarget, parse_target
from tests.conftest import free_port, keygen

# A board folder no shell may interpret: spaces, quotes, $(...), backticks, ';' and a glob.
NASTY = "board dir; touch PWNED $(touch PWNED2) `touch PWNED3` 'q' \"dq\" *"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A tiny float .tflite in a local folder whose name needs quoting too."""
    from tests.targets.test_host_bench import _convert, _tiny_classifier

    path = tmp_path_factory.mktemp("models") / "my model $(x).tflite"
    path.write_bytes(_convert(_tiny_classifier(), int8=False))
    return path


def test_argv_keeps_every_word_one_item_and_the_host_after_double_dash():
    target = SshTarget("pi", "board", 2222)
    args = ssh.ssh_args(target, ssh.SshOptions(key=Path("my key"), known_hosts=Path("k h")), ["cat", "a b; c"])
    assert args[:1] == ["ssh"] and args[-3:] == ["--", "board", "cat 'a b; c'"]
    assert ["-p", "2222"] == args[args.index("-p"):args.index("-p") + 2] and "my key" in args
    assert "UserKnownHostsFile=k h" in args and "StrictHostKeyChecking=yes" in args and "BatchMode=yes" in args


def test_benchmark_runs_on_the_board_with_a_nasty_remote_folder(sshd, model, tmp_path):
    target, options = sshd
    board_dir = tmp_path / NASTY
    board_dir.mkdir()
    options = ssh.SshOptions(python=options.python, key=options.key, known_hosts=options.known_hosts, dir=str(board_dir))
    result = ssh.run_benchmark(target, options, model, threads=1, warmup=1, runs=5)
    assert result["target"] == f"ssh:{target.user}@127.0.0.1:{target.port}"
    assert result["latency_ms"]["n"] == 5 and result["latency_ms"]["p50"] > 0
    assert result["runtime"] == "ai-edge-litert" and result["delegate"] == "xnnpack"
    assert result["input"]["shape"] == [1, 16, 16, 3]
    # The board (this machine, same runtime) gave exactly the host's outputs for the inputs it fed.
    diff = result["output_diff"]
    assert (diff["max_abs"], diff["max_lsb"], diff["host_delegate"]) == (0.0, None, "xnnpack")
    # ... and the same logits (the softmax's input, read through the probe copied to the board); no
    # data here, so one random input, and the record says so.
    assert (diff["compared"], diff["inputs"], diff["n"], diff["logits_max_abs"], diff["top1_agreement"]) == (
        "logits", "random", 1, 0.0, 1.0)
    assert list(board_dir.iterdir()) == []  # the per-run folder is removed
    assert not any(tmp_path.rglob("PWNED*")) and not any(Path.home().glob("PWNED*"))
    assert parse_target(result["target"]) == target


def test_an_mnn_artifact_runs_on_the_board_like_on_the_host(sshd, trained_model_file, tmp_path):
    from converters import mnn as mnn_converter
    from converters import onnx as onnx_converter
    from pipeline.models.loading import load_keras_model

    target, options = sshd
    exported = onnx_converter.from_keras(load_keras_model(trained_model_file), tmp_path / "tiny.onnx")
    model = mnn_converter.convert(exported, tmp_path / "tiny_fp32.mnn")
    result = ssh.run_benchmark(target, options, model, threads=1, warmup=1, runs=5)
    assert result["runtime"] == "mnn" and result["latency_ms"]["n"] == 5 and result["input"]["shape"] == [1, 3, 16, 16]
    diff = result["output_diff"]  # the board runs the host's MNN here: the same numbers
    assert diff["max_abs"] == 0.0 and diff["compared"] == "logits" and diff["logits_max_abs"] == 0.0 and diff["top1_agreement"] == 1.0


def test_unknown_host_key_is_refused_with_a_hint(sshd, tmp_path):
    target, options = sshd
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    strict = ssh.SshOptions(python=options.python, key=options.key, known_hosts=empty)
    with pytest.raises(ToolError, match="host key is unknown or changed"):
        ssh.make_remote_dir(target, strict)
    assert empty.read_text() == ""  # nothing was added behind the user's back


def test_wrong_key_is_refused_with_a_hint(sshd, tmp_path):
    target, options = sshd
    ssh_keygen = tmp_path / "other_key"
    keygen(ssh_keygen)
    other = ssh.SshOptions(python=options.python, key=ssh_keygen, known_hosts=options.known_hosts)
    with pytest.raises(ToolError, match="key authentication failed"):
        ssh.make_remote_dir(target, other)


def test_board_without_the_runtime_names_the_python_and_cleans_up(sshd, model, tmp_path):
    target, options = sshd
    options = ssh.SshOptions(python="/usr/bin/python3", key=options.key, known_hosts=options.known_hosts, dir=str(tmp_path))
    # Debian's python3 has no numpy here (exit 1 on import); with python3-numpy, no TFLite runtime (exit 3).
    with pytest.raises(BenchError, match=r"runner exited with [13] .*/usr/bin/python3.*deploy devices --setup") as caught:
        ssh.run_benchmark(target, options, model, threads=1, warmup=0, runs=1)
    assert "No module named 'numpy'" in str(caught.value) or "no TFLite runtime" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def _ssh_flags(options):
    return ["--ssh-python", options.python, "--ssh-key", str(options.key), "--ssh-known-hosts", str(options.known_hosts)]


def test_deploy_bench_on_the_board_prints_its_records(sshd, model):
    target, options = sshd
    result = CliRunner().invoke(cli, ["bench", str(model), "--target", f"ssh:{target.user}@127.0.0.1:{target.port}",
                                      "--threads", "1,2", "--warmup", "0", "--runs", "3", "--json", *_ssh_flags(options)])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.output.splitlines()]
    assert [(r["target"], r["threads"]) for r in records] == [(target.name, 1), (target.name, 2)]


def test_deploy_devices_probes_the_board(sshd, tmp_path, monkeypatch):
    target, options = sshd
    monkeypatch.setenv("DEPLOY_EMU_HOME", str(tmp_path))
    unreachable = f"ssh:{target.user}@127.0.0.1:{free_port()}"
    result = CliRunner().invoke(cli, ["devices", "--board", target.name, "--board", unreachable, *_ssh_flags(options)])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert "ready (x86_64, Python" in lines[target.name] or "ready (aarch64, Python" in lines[target.name]
    assert "not reachable" in lines[unreachable]
    assert lines["arm64-emu"].split(None, 1)[1].startswith("not set up")


@pytest.mark.slow
def test_build_benchmarks_host_and_board_into_the_report(sshd, trained_model_file, image_folder, tmp_path):
    from pipeline import report as report_files
    from pipeline.build import build
    from pipeline.config import load_config

    target, options = sshd
    config = load_config(overrides={
        "models": [str(trained_model_file)], "data": str(image_folder), "out": tmp_path / "run", "precisions": ["fp32"],
        "warmup": 1, "runs": 3, "threads": [1], "val_fraction": 0.25, "targets": ["host", target.name],
        "ssh_python": options.python, "ssh_key": options.key, "ssh_known_hosts": options.known_hosts,
    })
    build(config)
    report = report_files.load(tmp_path / "run")
    assert not report.failures
    # Every format runs on the board, ncnn's .param with the .bin beside it.
    assert {a.format for a in report.artifacts} == {"tflite", "ncnn", "onnx"}
    for artifact in report.artifacts:
        by_target = {b.target: b for b in artifact.benchmarks}
        assert set(by_target) == {"host", target.name}
        board = by_target[target.name]
        assert board.latency_ms.n == 3 and not board.emulated
        diff = board.output_diff
        assert diff is not None and diff.max_abs == 0.0, artifact.id
        # Compared on validation images (every one of the 25 % held out: fewer than 64), logits equal.
        assert (diff.compared, diff.inputs, diff.n) == ("logits", "validation", report.data.val), artifact.id
        assert diff.logits_max_abs == 0.0 and diff.top1_agreement == 1.0 and diff.target_top1 == diff.host_top1
    assert target.name in (tmp_path / "run" / "report.md").read_text()
