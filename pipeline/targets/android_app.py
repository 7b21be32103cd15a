"""The android-demo app as a benchmark target: start its benchmark screen over adb, read its record.

    adb -s SERIAL shell am start -W -n com.mobiledeploy.demo/.BenchmarkActivity --ei threads N
        --ei warmup W --ei runs R --ez gpu false --es run_id ID

The app benchmarks the model exported into it (`deploy export android`) and writes one record
in the device runner's JSON format to its external files folder, which adb can read without
root; the run id proves the file is this run's and not an old one.

Everything but `run_app_benchmark` is pure (argument lists, parsing, checks) so it is tested
without a phone; adb itself is driven through pipeline/targets/adb.py.
"""
from __future__ import annotations

import json
import subprocess
import time
import uuid

from pipeline.errors import ToolError
from pipeline.report.ingest import RECORD_KEYS
from pipeline.targets.adb import Device, adb_args, choose_serial, find_adb, list_devices, parse_devices, run_adb, shell_args  # noqa: F401

PACKAGE = "com.mobiledeploy.demo"
ACTIVITY = f"{PACKAGE}/.BenchmarkActivity"
RESULT_DIR = f"/sdcard/Android/data/{PACKAGE}/files/benchmarks"
TARGET = "android-app"


# the demo app ---------------------------------------------------------------------------------

def start_args(run_id: str, threads: int, warmup: int, runs: int, gpu: bool) -> list[str]:
    """`shell am start` of the benchmark screen with its extras; -W waits until it is shown."""
    return shell_args(
        "am", "start", "-W", "-n", ACTIVITY,
        "--ei", "threads", str(threads), "--ei", "warmup", str(warmup), "--ei", "runs", str(runs),
        "--ez", "gpu", "true" if gpu else "false", "--es", "run_id", run_id,
    )


def result_path(run_id: str) -> str:
    return f"{RESULT_DIR}/{run_id}.json"


def check_started(serial: str, proc: subprocess.CompletedProcess) -> None:
    """`am start` exits 0 even when the activity does not exist: read what it printed."""
    said = proc.stdout + proc.stderr
    if proc.returncode != 0 or "Error" in said or "Status: ok" not in said:
        raise ToolError(
            f"{serial}: cannot start {ACTIVITY} ({' '.join(said.split()) or f'exit {proc.returncode}'}); "
            f"build and install android-demo (see android-demo/README.md)"
        )


def check_record(text: str, run_id: str, where: str) -> dict:
    """The app's result file -> its record, refused if it is not JSON, not this run's (stale),
    reports an error, or lacks a key of the device runner's record."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        raise ToolError(f"{where}: not JSON ({e.msg}); is android-demo up to date?") from e
    if not isinstance(record, dict):
        raise ToolError(f"{where}: expected one JSON object (a benchmark record)")
    if record.get("run_id") != run_id:
        raise ToolError(f"{where}: run id {record.get('run_id')!r} is not this run's ({run_id}): a stale result")
    if record.get("error"):
        raise ToolError(f"{where}: the app's benchmark failed: {record['error']}")
    missing = [key for key in RECORD_KEYS if key not in record]
    if missing:
        raise ToolError(f"{where}: the app's record lacks {', '.join(missing)}; rebuild android-demo from this checkout")
    return {**record, "target": TARGET}


def run_app_benchmark(serial: str | None, threads: int, warmup: int, runs: int, gpu: bool = False,
                      timeout_s: float = 600, poll_s: float = 1.0) -> dict:
    """Run the app's benchmark screen once on a phone and return its record (target "android-app")."""
    adb = find_adb()
    serial = choose_serial(list_devices(adb), serial)
    run_id = uuid.uuid4().hex
    check_started(serial, run_adb(adb_args(adb, serial, *start_args(run_id, threads, warmup, runs, gpu))))
    remote = result_path(run_id)
    deadline = time.monotonic() + timeout_s
    while True:
        proc = run_adb(adb_args(adb, serial, *shell_args("cat", remote)))
        if proc.returncode == 0 and proc.stdout.strip():
            break
        if time.monotonic() > deadline:
            raise ToolError(f"{serial}: the app wrote no result to {remote} within {timeout_s:.0f} s; see `adb logcat -s DeployDemo`")
        time.sleep(poll_s)
    run_adb(adb_args(adb, serial, *shell_args("rm", "-f", remote)))
    return check_record(proc.stdout, run_id, f"{serial}:{remote}")
