"""Wall time of the demo build from an empty cache, with --jobs 1 and with the default --jobs, in one run.

    python scripts/bench_build.py                      # the full demo, as `make demo` runs it (Makefile)
    python scripts/bench_build.py --model mobilenet_v2,squeezenet --epochs 5 --formats tflite,ncnn  # build flags override

Each build gets a fresh output folder (empty cache), so every stage runs. The default run goes
second, so that the first cannot leave it a warm disk cache it would not have on a fresh clone:
the order matters little (TensorFlow's files are cached after the first import either way).
Prints both wall times, the speed-up and `uptime` before and after: timings on a shared
machine say nothing without the load beside them.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def run_build(out: Path, jobs: int | None, extra: list[str]) -> tuple[float, int]:
    args = [sys.executable, "-m", "pipeline.cli", "build", "--data", "demo", "--out", str(out), *extra]
    if jobs is not None:
        args += ["--jobs", str(jobs)]
    log = out.with_suffix(".log")
    t0 = time.perf_counter()
    with log.open("w") as f:
        done = subprocess.run(args, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    seconds = time.perf_counter() - t0
    if done.returncode not in (0, 1):  # 1: a quality gate, still a finished build
        raise SystemExit(f"build with --jobs {jobs or 'default'} failed ({done.returncode}); log: {log}")
    return seconds, len(json.loads((out / "report.json").read_text())["artifacts"])


def demo_args() -> list[str]:
    """The flags of `make demo`'s build (the Makefile's demo recipe), without --data and --out."""
    line = next(line for line in (ROOT / "Makefile").read_text().splitlines() if "deploy build" in line and "--data demo" in line)
    words = line.split("deploy build", 1)[1].split()
    for flag in ("--data", "--out"):
        at = words.index(flag)
        del words[at:at + 2]
    return words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="where the two output folders go [a temp folder]")
    args, rest = parser.parse_known_args()
    extra = [*demo_args(), *rest]  # a flag given here comes last, so it wins
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-build-"))
    work.mkdir(parents=True, exist_ok=True)
    from pipeline.resources import default_jobs

    print(f"build args: {' '.join(extra)}; default --jobs here: {default_jobs()}")
    print(f"before: {uptime()}", flush=True)
    serial, n1 = run_build(work / "jobs1", 1, extra)
    print(f"--jobs 1:       {serial / 60:.1f} min ({serial:.0f} s), {n1} artifacts; {uptime()}", flush=True)
    parallel, n2 = run_build(work / "jobs-default", None, extra)
    print(f"--jobs default: {parallel / 60:.1f} min ({parallel:.0f} s), {n2} artifacts; {uptime()}", flush=True)
    print(f"speed-up: {serial / parallel:.2f}x (logs and reports in {work})")


if __name__ == "__main__":
    main()
