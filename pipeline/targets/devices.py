"""`deploy devices`: every target and whether it can be used now, one (name, status) row each."""
from __future__ import annotations

import os
import platform

from pipeline.errors import ToolError
from pipeline.targets import android_app, emulated, ssh
from pipeline.targets.spec import SshTarget

ABI_PROP = "ro.product.cpu.abi"


def host_row() -> tuple[str, str]:
    return "host", f"ready ({platform.machine()}, {os.cpu_count()} cores)"


def emulator_rows() -> list[tuple[str, str]]:
    return [(f"{arch}-emu", emulated.status(arch)) for arch in emulated.ARCHES]


def adb_rows() -> list[tuple[str, str]]:
    """One row per device `adb devices -l` lists, with its ABI and model when it is ready."""
    try:
        adb = android_app.find_adb()
        devices = android_app.list_devices(adb)
    except ToolError as e:
        return [("adb", f"not usable: {e}")]
    if not devices:
        return [("adb", "no device attached (connect one with USB debugging on, or `adb connect HOST:PORT`)")]
    return [(f"adb:{device.serial}", _adb_status(adb, device)) for device in devices]


def _adb_status(adb: str, device: android_app.Device) -> str:
    model = device.details.get("model", "unknown model")
    if device.state != "device":
        return f"{device.state} ({model})"
    proc = android_app.run_adb(android_app.adb_args(adb, device.serial, *android_app.shell_args("getprop", ABI_PROP)))
    abi = proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else "ABI unknown"
    return f"ready ({abi}, {model})"


def board_rows(boards: list[SshTarget], options: ssh.SshOptions) -> list[tuple[str, str]]:
    return [(board.name, ssh.probe(board, options)) for board in boards]


def all_rows(boards: list[SshTarget], options: ssh.SshOptions) -> list[tuple[str, str]]:
    return [host_row(), *emulator_rows(), *adb_rows(), *board_rows(boards, options)]
