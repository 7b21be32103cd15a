"""Android devices over adb: find and choose a device, and benchmark an artifact on it with the
runtime's own benchmark binary (LiteRT's benchmark_model, ncnn's benchncnn).

    adb -s SERIAL push ARTIFACT BINARY /data/local/tmp/mobile-deploy.XXXX/
    adb -s SERIAL shell taskset BIG_CORES_MASK .../benchmark_model --graph=... --num_runs=1 ...

Each timed sample is one run of the binary (its own warm-up runs first, then one timed run), so
every target yields `runs` samples and the same statistics as the device runner; init time and
memory come from the binary's output. The process is pinned to the fastest cores with taskset
where the device has it (benchncnn also gets powersave=2, big cores), and the device rests
`cooldown_s` before each artifact so thermal throttling from the previous one does not leak in.
The per-run folder is removed at the end. A device that disconnects mid-run leaves a record
marked `partial` with the samples taken so far; the build goes on.

Every adb command is an argument list; `adb shell` joins its arguments into one string for the
device's shell, so each word is quoted (shell_args). `adb connect` exits 0 even when it fails:
its output is read.
"""
from __future__ import annotations

import logging
import re
import shlex
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.errors import ToolError, UserInputError
from pipeline.targets.host import artifact_files

log = logging.getLogger(__name__)
DEVICES_HEADER = "List of devices attached"
INSTALL_HINT = "install it (Debian/Ubuntu: apt-get install adb; elsewhere: Android SDK platform-tools)"


# finding and choosing a device -------------------------------------------------------------

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


def connect(adb: str, serial: str) -> None:
    """`adb connect HOST:PORT` for a network device; it exits 0 on failure, so its output decides."""
    proc = run_adb([adb, "connect", serial], timeout_s=30)
    said = " ".join((proc.stdout + proc.stderr).split())
    if proc.returncode != 0 or not re.search(r"\b(already )?connected to\b", said) or "cannot" in said or "failed" in said:
        raise ToolError(f"adb connect {serial} failed: {said or f'exit {proc.returncode}'}; check the address and that "
                        f"the device has wireless debugging on")


def resolve_serial(adb: str, serial: str | None) -> str:
    """The device to use; a HOST:PORT serial is connected first."""
    if serial is not None and re.fullmatch(r"[\w.-]+:\d+", serial):
        connect(adb, serial)
    return choose_serial(list_devices(adb), serial)


# benchmarking an artifact with the runtime's own binary ---------------------------------------

DISCONNECTED = ("device offline", "not found", "no devices/emulators found", "error: closed", "device unauthorized",
                "protocol fault")


class DeviceGone(ToolError):
    """adb lost the device (unplugged, rebooted, went offline) during a benchmark."""


@dataclass(frozen=True)
class AdbOptions:
    benchmark_model: Path | None = None  # LiteRT's benchmark_model built for the device's ABI
    benchncnn: Path | None = None  # ncnn's benchncnn built for the device's ABI
    cooldown_s: float = 10.0  # rest before each artifact
    dir: str = "/data/local/tmp"  # where the per-run folder is made; executable, writable without root


def parse_benchmark_model(text: str) -> dict:
    """LiteRT benchmark_model's log -> {latency_us: {count, first, curr, min, max, avg, std, [p5, median, p95]},
    init_ms, memory_mb, delegate, delegated_nodes}. The last `count=` line holds the timed runs (the
    first one the warm-up). An `ERROR:` line or no timings is a ToolError carrying the errors."""
    errors = [line.strip() for line in text.splitlines() if line.strip().startswith("ERROR")]
    stats = re.findall(r"count=\d+ first=\S+ curr=\S+ min=\S+ max=\S+ avg=\S+ std=\S+(?: p5=\S+ median=\S+ p95=\S+)?", text)
    if errors or not stats:
        raise ToolError("benchmark_model: " + (" | ".join(errors[-3:]) or "no timings in its output"))
    latency = {key: float(value) for key, value in (item.split("=") for item in stats[-1].split())}
    latency["count"] = int(latency["count"])
    init = re.search(r"Initialized session in ([\d.]+)\s*ms", text)
    memory = re.search(r"(?:Peak memory footprint|Memory footprint delta from the start of the tool) \(MB\): "
                       r"init=([\d.]+) overall=([\d.]+)", text)
    replaced = re.search(r"Replacing (\d+) out of (\d+) node\(s\) with delegate \(TfLiteXNNPackDelegate\)", text)
    xnnpack = "Created TensorFlow Lite XNNPACK delegate" in text and (replaced is None or int(replaced.group(1)) > 0)
    return {
        "latency_us": latency,
        "init_ms": float(init.group(1)) if init else None,
        "memory_mb": float(memory.group(2)) if memory else None,
        "delegate": "xnnpack" if xnnpack else "none",
        "delegated_nodes": [int(replaced.group(1)), int(replaced.group(2))] if replaced else None,
    }


def parse_benchncnn(text: str) -> dict:
    """benchncnn's output -> {settings: {loop_count, num_threads, powersave, gpu_device, cooling_down},
    models: {name: {min, max, avg}}} in ms; both its old line format and the one with cpu/user/sys."""
    settings = {key: int(value) for key, value in re.findall(r"^(loop_count|num_threads|powersave|gpu_device|cooling_down)"
                                                             r" = (-?\d+)\s*$", text, re.M)}
    models = {}
    for name, mn, mx, avg in re.findall(r"^\s*(\S+?)\s+(?:cpu |gpu )?min =\s*([\d.]+)\s+max =\s*([\d.]+)\s+avg =\s*([\d.]+)",
                                        text, re.M):
        models[name] = {"min": float(mn), "max": float(mx), "avg": float(avg)}
    if not models:
        raise ToolError("benchncnn: no timings in its output: " + " | ".join(text.strip().splitlines()[-3:]))
    return {"settings": settings, "models": models}


def big_core_mask(max_freqs: dict[int, int]) -> str | None:
    """taskset's hex mask of the cores with the highest max frequency; None when all cores are alike."""
    if not max_freqs:
        return None
    top = max(max_freqs.values())
    big = [cpu for cpu, freq in max_freqs.items() if freq == top]
    return None if len(big) == len(max_freqs) else format(sum(1 << cpu for cpu in big), "x")


def parse_max_freqs(text: str) -> dict[int, int]:
    """Lines `/sys/devices/system/cpu/cpuN/cpufreq/cpuinfo_max_freq FREQ` -> {N: FREQ}."""
    found = re.findall(r"/cpu(\d+)/cpufreq/cpuinfo_max_freq (\d+)", text)
    return {int(cpu): int(freq) for cpu, freq in found}


def benchmark_model_args(binary: str, model: str, threads: int, warmup: int) -> list[str]:
    """One sample: `warmup` untimed runs, then exactly one timed run (no minimum time)."""
    return [binary, f"--graph={model}", f"--num_threads={threads}", "--use_xnnpack=true",
            f"--warmup_runs={warmup}", "--warmup_min_secs=0", "--num_runs=1", "--min_secs=0"]


def benchncnn_args(binary: str, param: str, threads: int, shape_whc: tuple[int, int, int]) -> list[str]:
    """One sample: loop count 1, big cores (powersave 2), CPU, no cooling down (we rest per artifact)."""
    w, h, c = shape_whc
    return [binary, "1", str(threads), "2", "-1", "0", f"param={param}", f"shape=[{w},{h},{c}]"]


class AdbDevice:
    """One device's adb commands; raises DeviceGone when adb says the device is no longer there."""

    def __init__(self, adb: str, serial: str):
        self.adb, self.serial = adb, serial

    def run(self, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
        proc = run_adb(adb_args(self.adb, self.serial, *args), timeout_s=timeout_s)
        said = (proc.stdout + proc.stderr).strip()
        last_line = said.splitlines()[-1] if said else ""
        if proc.returncode != 0 and any(sign in last_line for sign in DISCONNECTED):
            raise DeviceGone(f"{self.serial}: device disconnected ({' '.join(said.split())[:200]})")
        return proc

    def shell(self, *words: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
        return self.run(*shell_args(*words), timeout_s=timeout_s)

    def push(self, local: Path, remote: str) -> None:
        proc = self.run("push", str(local), remote, timeout_s=300)
        if proc.returncode != 0:
            raise ToolError(f"{self.serial}: cannot push {local} to {remote} ({' '.join((proc.stdout + proc.stderr).split())})")

    def getprop(self, name: str) -> str:
        return self.shell("getprop", name).stdout.strip()

    def max_freqs(self) -> dict[int, int]:
        listing = self.shell("sh", "-c", 'for f in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq; '
                                         'do echo "$f $(cat "$f")"; done')
        return parse_max_freqs(listing.stdout)

    def pin_prefix(self, max_freqs: dict[int, int]) -> list[str]:
        """`taskset MASK` for the big cores when the device has taskset and cores differ, else nothing."""
        mask = big_core_mask(max_freqs)
        if mask is None:
            return []
        if self.shell("sh", "-c", "command -v taskset").returncode != 0:
            log.warning("%s: no taskset on the device; the benchmark is not pinned to the big cores", self.serial)
            return []
        return ["taskset", mask]


def run_benchmark(target, options: AdbOptions, model_path: Path, threads: int, warmup: int, runs: int) -> dict:
    """Benchmark an artifact on an Android device with the runtime's binary; one record like the device runner's."""
    model_path = Path(model_path)
    kind = "ncnn" if model_path.suffix == ".param" else "tflite" if model_path.suffix == ".tflite" else None
    if kind is None:
        raise ToolError(f"{target.name}: {model_path.name}: only TFLite and ncnn artifacts run on Android (no onnxruntime binary)")
    binary = options.benchncnn if kind == "ncnn" else options.benchmark_model
    if binary is None or not Path(binary).is_file():
        flag = "--adb-benchncnn" if kind == "ncnn" else "--adb-benchmark-model"
        raise UserInputError(f"{target.name}: {flag} FILE is needed to run {kind} artifacts on the device "
                             f"({binary or 'not given'}); see docs/targets.md, 'Android devices over adb'")
    adb = find_adb()
    device = AdbDevice(adb, resolve_serial(adb, target.serial))
    freqs = device.max_freqs()
    cpu = {"machine": device.getprop("ro.product.cpu.abi"), "count": len(freqs) or None,
           "model": " ".join(filter(None, (device.getprop("ro.product.model"), device.getprop("ro.soc.model")))) or None}
    folder = f"{options.dir}/mobile-deploy.{uuid.uuid4().hex[:12]}"
    samples, parsed, partial_reason = [], None, None
    try:
        device.shell("mkdir", "-p", folder)
        remote_binary = f"{folder}/{Path(binary).name}"
        device.push(Path(binary), remote_binary)
        device.shell("chmod", "755", remote_binary)
        for file in artifact_files(model_path):
            device.push(file, f"{folder}/{file.name}")
        remote_model = f"{folder}/{model_path.name}"
        if kind == "ncnn":
            from pipeline.targets.device_runner import ncnn_input_shape

            c, h, w = ncnn_input_shape(str(model_path)) or (0, 0, 0)
            command = benchncnn_args(remote_binary, remote_model, threads, (w, h, c))
        else:
            command = benchmark_model_args(remote_binary, remote_model, threads, warmup)
        command = device.pin_prefix(freqs) + command
        time.sleep(options.cooldown_s)
        for _ in range(runs):
            proc = device.shell(*command, timeout_s=600)
            text = proc.stdout + proc.stderr
            if kind == "ncnn":
                parsed = parse_benchncnn(text)
                samples.append(next(iter(parsed["models"].values()))["avg"])
            else:
                parsed = parse_benchmark_model(text)
                samples.append(parsed["latency_us"]["avg"] / 1000)
            if proc.returncode != 0:
                raise ToolError(f"{target.name}: {Path(binary).name} exited with {proc.returncode}: {' '.join(text.split())[-300:]}")
    except DeviceGone as gone:
        if not samples:
            raise
        partial_reason = str(gone)
        log.warning("%s: %s; keeping the %d of %d samples taken (marked partial)", model_path.name, gone, len(samples), runs)
    finally:
        try:
            device.shell("rm", "-rf", folder)
        except ToolError as e:
            log.warning("%s: could not remove %s: %s", target.name, folder, e)
    return _record(target.name, kind, cpu, threads, warmup, samples, parsed, partial_reason, command)


def _record(name, kind, cpu, threads, warmup, samples, parsed, partial_reason, command) -> dict:
    from pipeline.targets.device_runner import summarize

    latencies = np.asarray(samples, dtype=np.float64)
    record = {
        "target": name, "runtime": "benchncnn" if kind == "ncnn" else "benchmark_model", "runtime_version": "unknown",
        "threads": threads, "warmup": warmup, "latency_ms": summarize(latencies),
        "cpu": cpu, "python": None,
        "input": None, "partial": partial_reason is not None,
        "options": {"command": shlex.join(command)} | ({"partial_reason": partial_reason} if partial_reason else {}),
    }
    # report.json keeps options flat (str, int, bool values).
    if kind == "ncnn":
        record |= {"delegate": "none", "init_ms": None, "peak_rss_mb": None}
        record["options"] |= {f"benchncnn_{key}": value for key, value in parsed["settings"].items()}
    else:
        record |= {"delegate": parsed["delegate"], "init_ms": parsed["init_ms"], "peak_rss_mb": parsed["memory_mb"]}
        if parsed["delegated_nodes"]:
            record["options"]["delegated_nodes"] = "{} of {}".format(*parsed["delegated_nodes"])
    return record
