"""The android-demo app as a benchmark target: start its benchmark screen over adb, read its record.

    adb -s SERIAL shell am start -W -n com.mobiledeploy.demo/.BenchmarkActivity --ei threads N
        --ei warmup W --ei runs R --ez gpu false --es run_id ID

The app benchmarks the model exported into it (`deploy export android`) and writes one record
in the device runner's JSON format to its external files folder, which adb can read without
root; the run id proves the file is this run's and not an old one.

Everything but `run_app_benchmark` and `list_devices` is pure (argument lists, parsing, checks)
so it is tested without a phone. Not specific to the app, and reusable by any adb target:
`find_adb`, `run_adb`, `adb_args`, `shell_args`, `parse_devices`, `list_devices`, `choose_serial`.
"""
from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field

from pipeline.errors import ToolError, UserInputError
from pipeline.report.ingest import RECORD_KEYS

PACKAGE = "com.mobiledeploy.demo"
ACTIVITY = f"{PACKAGE}/.BenchmarkActivity"
RESULT_DIR = f"/sdcard/Android/data/{PACKAGE}/files/benchmarks"
TARGET = "android-app"
DEVICES_HEADER = "List of devices attached"
INSTALL_HINT = "install it (Debian/Ubuntu: apt-get install adb; elsewhere: Android SDK platform-tools)"


# adb in general -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Device:
    """One line of `adb devices -l`: serial, state (device, unauthorized, offline...), key:value details."""
    serial: str
    state: str
    details: dict[str, str] = field(default_factory=dict)


def find_adb() -> str:
    adb = shutil.which("adb")
    if adb is None:
        raise ToolError(f"adb not found on PATH: {INSTALL_HINT}, then connect a phone with USB debugging on")
    return adb


def adb_args(adb: str, serial: str, *args: str) -> list[str]:
    """argv for one adb command on one device; the serial stays one item whatever it contains."""
    return [adb, "-s", serial, *args]


def shell_args(*remote: str) -> list[str]:
    """`shell` plus ONE command string: adb joins shell arguments with spaces and the device's
    shell parses the result, so each word is quoted here to reach the device unchanged."""
    return ["shell", " ".join(shlex.quote(word) for word in remote)]


def run_adb(args: list[str], timeout_s: float = 60) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ToolError(f"`adb {shlex.join(args[1:])}` timed out after {timeout_s:.0f} s") from None
    except OSError as e:
        raise ToolError(f"cannot run {args[0]} ({e.strerror or e}): {INSTALL_HINT}") from e


def parse_devices(text: str) -> list[Device]:
    """The devices in the output of `adb devices` or `adb devices -l`.

    Long lines are `%-22s %s` (serial padded, state) then key:value details, transport_id last;
    details are read from the end, as adb's source advises, so a serial with spaces survives.
    The state is one word except "no permissions (...); see [...]".
    """
    lines = text.splitlines()
    if DEVICES_HEADER not in lines:
        raise ToolError(f"`adb devices -l` gave no device list: {' '.join(text.split()) or 'no output'}")
    devices = []
    for line in lines[lines.index(DEVICES_HEADER) + 1:]:
        if not line.strip():
            continue
        words = line.rstrip().split(" ")
        details: dict[str, str] = {}
        while len(words) > 2 and _is_detail(words[-1]):
            key, value = words.pop().split(":", 1)
            details[key] = value
        rest = " ".join(words)
        if "\t" in rest:  # short listing: serial TAB state
            serial, state = rest.split("\t", 1)
        elif " no permissions" in rest:
            serial, state = rest.split(" no permissions", 1)
            state = "no permissions" + state
        else:
            serial, _, state = rest.rpartition(" ")
        devices.append(Device(serial.rstrip(), state.strip(), dict(reversed(details.items()))))
    return devices


def _is_detail(word: str) -> bool:
    key, sep, value = word.partition(":")
    return bool(sep and value and key.replace("_", "").isalpha() and key.islower())


def list_devices(adb: str) -> list[Device]:
    """`adb devices -l` (starts the adb server if it is not running)."""
    proc = run_adb([adb, "devices", "-l"])
    if proc.returncode != 0:
        raise ToolError(f"`adb devices -l` failed: {' '.join((proc.stdout + proc.stderr).split())}")
    return parse_devices(proc.stdout)


def choose_serial(devices: list[Device], serial: str | None) -> str:
    """The serial to use: the one given if it is ready, else the only ready device.

    A phone that is absent, unauthorized or offline is a ToolError (exit 3: the command is right,
    the device side is not ready); several phones and no --serial is a usage error (exit 2).
    """
    listed = ", ".join(f"{d.serial} ({d.state})" for d in devices) or "none"
    ready = [d.serial for d in devices if d.state == "device"]
    if serial is not None:
        match = next((d for d in devices if d.serial == serial), None)
        if match is None:
            raise ToolError(f"--serial {serial}: no such device attached (adb devices: {listed})")
        if match.state != "device":
            raise ToolError(f"--serial {serial}: device is {match.state}; {_state_hint(match.state)}")
        return serial
    if not ready:
        raise ToolError(f"no Android device ready (adb devices: {listed}): connect one with USB debugging on and accept its prompt")
    if len(ready) > 1:
        raise UserInputError(f"several devices attached ({', '.join(ready)}): choose one with --serial")
    return ready[0]


def _state_hint(state: str) -> str:
    if state == "unauthorized":
        return "unlock the phone and accept the USB debugging prompt"
    if state.startswith("no permissions"):
        return "fix the USB permissions (udev rules) and reconnect"
    return "reconnect it (adb reconnect) and wait until `adb devices` says device"


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
