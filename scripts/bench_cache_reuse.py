"""Wall time of a first `deploy build` and of a second identical one, and their ratio, in one run.

    .venv/bin/python scripts/bench_cache_reuse.py [--out DIR] [-- extra deploy build flags]

Defaults to the README's demo (`--model all --data demo`) in a fresh temporary folder. The
second run must reuse every stage; the script counts the '[cached]' and '[run]' stage lines.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed_build(args: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "build", *args], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"deploy build failed ({result.returncode}): {result.stderr.strip().splitlines()[-1]}")
    return seconds, result.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="run folder (default: a fresh temporary one, removed afterwards)")
    parser.add_argument("flags", nargs="*", default=["--model", "all", "--data", "demo"])
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="deploy-cache-"))
    try:
        build_args = [*args.flags, "--out", str(out)]
        first, log1 = timed_build(build_args)
        print(f"first run:  {first:8.1f} s  ({log1.count('[run]')} stages run, {log1.count('[cached]')} cached)", flush=True)
        second, log2 = timed_build(build_args)
        print(f"second run: {second:8.1f} s  ({log2.count('[run]')} stages run, {log2.count('[cached]')} cached)")
        print(f"second/first wall time: {100 * second / first:.2f} %")
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
