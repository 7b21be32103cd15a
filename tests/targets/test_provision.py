"""`deploy devices --setup`'s host side without a board: which wheels, which platform tags, the errors.
(The board side runs on the emulated board: tests/targets/test_board.py.)"""
import importlib.metadata

import pytest

from pipeline.errors import ToolError, UserInputError
from pipeline.targets import provision
from tests.test_cli import assert_one_line_error, deploy


def test_an_aarch64_board_gets_every_runtime_at_the_hosts_versions():
    requirements, modules = provision.packages("aarch64")
    assert requirements == [f"{name}=={importlib.metadata.version(name)}"
                            for name in ("numpy", "ai-edge-litert", "ncnn", "mnn", "onnxruntime")]
    assert "ai_edge_litert.interpreter" in modules and "MNN" in modules


def test_an_armv7_board_gets_tflite_runtime_and_its_own_numpy():
    requirements, modules = provision.packages("armv7l")
    assert requirements[0] == provision.TFLITE_RUNTIME_ARMV7 and not any(r.startswith("numpy") for r in requirements)
    assert modules == ["tflite_runtime.interpreter", "ncnn"]
    with pytest.raises(UserInputError, match="riscv64 board"):
        provision.packages("riscv64")


def test_platform_tags_cover_every_manylinux_the_boards_glibc_runs():
    args = provision.platform_args("aarch64", "3.11", "2.36")
    platforms = [args[i + 1] for i, a in enumerate(args) if a == "--platform"]
    assert platforms[0] == "manylinux2014_aarch64" and platforms[-1] == "manylinux_2_36_aarch64"
    assert "manylinux_2_28_aarch64" in platforms and "manylinux_2_37_aarch64" not in platforms
    assert args[args.index("--python-version") + 1] == "3.11" and "--only-binary=:all:" in args
    with pytest.raises(ToolError, match="not glibc"):
        provision.platform_args("aarch64", "3.11", "")  # musl (Alpine): no manylinux wheel runs


def test_a_wheels_folder_without_the_boards_wheels_is_a_one_line_error(tmp_path):
    platform = provision.platform_args("aarch64", "3.11", "2.36")
    with pytest.raises(ToolError, match=rf"cannot get the board's wheels \(numpy==1\.0\.0\) from --wheels {tmp_path}"):
        provision.download(["numpy==1.0.0"], platform, tmp_path / "cache", tmp_path)


def test_setup_of_something_that_is_not_a_board_is_a_usage_error():
    assert_one_line_error(deploy("devices", "--setup", "adb"), 2, "--setup 'adb': a board is ssh:USER@HOST[:PORT]")
