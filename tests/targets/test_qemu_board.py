"""The emulated board's helper where no board boots: the one-line errors (booting it: test_board.py)."""
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import ToolError
from pipeline.targets import qemu_board

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "arm-board.py"


def test_without_an_image_start_names_the_setup_script(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOY_BOARD_HOME", str(tmp_path / "nothing"))
    with pytest.raises(ToolError, match=r"no board image in .*nothing: run scripts/setup-arm-board.sh"):
        qemu_board.start(tmp_path / "board")
    assert not (tmp_path / "board").exists()


def test_stopping_a_board_never_started_is_a_one_line_error(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "stop", "--dir", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 3 and proc.stderr.strip() == f"arm-board: no board was started in {tmp_path}"
