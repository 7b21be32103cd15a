"""The android-demo app as a benchmark target: start its benchmark screen over adb, read its record.

    adb shell am start -W -n com.mobiledeploy.demo/.BenchmarkActivity --ei threads N --ei warmup W
        --ei runs R --ez gpu false --es run_id ID

The app benchmarks the model exported into it (`deploy export android`) and writes one record
in the device runner's JSON format to its external files folder, which adb can read without
root; the run id proves the file is this run's and not an old one.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid

from pipeline.errors import ToolError, UserInputError

PACKAGE = "com.mobiledeploy.demo"
ACTIVITY = f"{PACKAGE}/.BenchmarkActivity"
RESULT_DIR = f"/sdcard/Android/data/{PACKAGE}/files/benchmarks"
TARGET = "android-app"


def _adb() -> str:
    adb = shutil.which("adb")
    if adb is None:
        raise ToolError("adb not found: install it (Debian: apt-get install adb) and connect a phone with USB debugging on")
    return adb


def _run(args: list[str], timeout_s: float = 60) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ToolError(f"`{' '.join(args[1:])}` timed out after {timeout_s:.0f} s") from None


def device_serial(serial: str | None) -> str:
    """The serial to use: the one given (must be attached), else the only attached device."""
    proc = _run([_adb(), "devices"])
    devices = [
        line.split()[0] for line in proc.stdout.splitlines()[1:]
        if len(line.split()) >= 2 and line.split()[1] == "device"
    ]
    if serial is not None:
        if serial not in devices:
            raise UserInputError(f"--serial {serial}: no such device attached (adb devices: {', '.join(devices) or 'none'})")
        return serial
    if not devices:
        raise UserInputError("no Android device attached (adb devices lists none): connect one with USB debugging on")
    if len(devices) > 1:
        raise UserInputError(f"several devices attached ({', '.join(devices)}): choose one with --serial")
    return devices[0]


def run_app_benchmark(serial: str | None, threads: int, warmup: int, runs: int, gpu: bool = False,
                      timeout_s: float = 600, poll_s: float = 1.0) -> dict:
    """Run the app's benchmark screen once and return its record (target "android-app")."""
    adb = _adb()
    serial = device_serial(serial)
    run_id = uuid.uuid4().hex
    start = [
        adb, "-s", serial, "shell", "am", "start", "-W", "-n", ACTIVITY,
        "--ei", "threads", str(threads), "--ei", "warmup", str(warmup), "--ei", "runs", str(runs),
        "--ez", "gpu", "true" if gpu else "false", "--es", "run_id", run_id,
    ]
    proc = _run(start)
    # `am start` exits 0 even when the activity does not exist: read what it says.
    if proc.returncode != 0 or "Error" in proc.stdout or "Error" in proc.stderr:
        reason = " ".join((proc.stdout + proc.stderr).split())
        raise ToolError(f"{serial}: cannot start {ACTIVITY} ({reason}); build and install android-demo (see android-demo/README.md)")
    remote = f"{RESULT_DIR}/{run_id}.json"
    deadline = time.monotonic() + timeout_s
    while True:
        proc = _run([adb, "-s", serial, "shell", "cat", remote])
        if proc.returncode == 0 and proc.stdout.strip().startswith("{"):
            break
        if time.monotonic() > deadline:
            raise ToolError(f"{serial}: the app wrote no result to {remote} within {timeout_s:.0f} s; see `adb logcat -s DeployDemo`")
        time.sleep(poll_s)
    _run([adb, "-s", serial, "shell", "rm", "-f", remote])
    try:
        record = json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        raise ToolError(f"{serial}:{remote}: not JSON ({e.msg})") from e
    if record.get("run_id") != run_id:
        raise ToolError(f"{serial}:{remote}: run id {record.get('run_id')!r} is not this run's ({run_id})")
    if record.get("error"):
        raise ToolError(f"{serial}: the app's benchmark failed: {record['error']}")
    record["target"] = TARGET
    return record
