"""Add benchmark records measured elsewhere (the demo apps on a phone) to a run's report.json.

A record is the JSON object pipeline/targets/device_runner.py prints plus `target` (and, from
the apps, `artifact`: the id of the artifact they ran). The apps write exactly that format.
"""
from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from pipeline.errors import UserInputError
from pipeline.report import schema

APP_TARGETS = ("android-app", "ios-app")
# What an app's record must hold besides its target: the keys benchmark_from_record reads and the
# id of the artifact the app ran.
RECORD_KEYS = ("artifact", "runtime", "runtime_version", "delegate", "threads", "warmup", "latency_ms",
               "init_ms", "peak_rss_mb", "cpu")


def benchmark_from_record(record: dict, emulated: bool = False) -> schema.Benchmark:
    """A device-runner record (+ target) -> the report's Benchmark; raises ValidationError/KeyError/TypeError."""
    cpu = record["cpu"]
    return schema.Benchmark(
        target=record["target"], runtime=record["runtime"], runtime_version=record["runtime_version"],
        delegate=record["delegate"], threads=record["threads"], warmup=record["warmup"],
        latency_ms=record["latency_ms"], init_ms=record["init_ms"], peak_rss_mb=record["peak_rss_mb"],
        cpu=f"{cpu['model']} ({cpu['machine']}, {cpu['count']} cores{', board ' + cpu['board'] if cpu.get('board') else ''})",
        emulated=record.get("emulated", emulated),
        output_diff=record.get("output_diff"), options=record.get("options", {}), partial=record.get("partial", False),
        arithmetic=record.get("arithmetic"),
    )


def read_json_object(path: Path, what: str, hint: str = "") -> dict:
    """A JSON file holding one object, or a one-line UserInputError naming the file and `what`."""
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise UserInputError(f"{path}: cannot read {what} ({e.strerror or e}){hint}") from e
    except json.JSONDecodeError as e:
        raise UserInputError(f"{path}: not JSON ({e.msg} at line {e.lineno}); expected {what}") from e
    except UnicodeDecodeError as e:
        raise UserInputError(f"{path}: not JSON (not UTF-8 text at byte {e.start}); expected {what}") from e
    if not isinstance(data, dict):
        raise UserInputError(f"{path}: expected one JSON object ({what})")
    return data


def read_record(path: Path) -> dict:
    return read_json_object(path, "the benchmark record")


def add_app_benchmark(run_dir: Path, record: dict, source: str) -> tuple[schema.Artifact, schema.Benchmark]:
    """Attach an app's record to its artifact in run_dir/report.json and rewrite the report files.

    A record for the same target, threads and delegate replaces the earlier one, so rerunning
    the app benchmark updates the report instead of piling up rows. `source` names the record
    (a file or a device) in errors.
    """
    from pipeline import report as report_files

    target = record.get("target")
    if target not in APP_TARGETS:
        raise UserInputError(f"{source}: 'target' is {target!r}; an app record has one of {', '.join(APP_TARGETS)}")
    try:
        bench = benchmark_from_record(record)
    except KeyError as e:
        raise UserInputError(f"{source}: benchmark record lacks {e.args[0]!r}; was it written by the demo app?") from e
    except (TypeError, ValidationError) as e:
        detail = e.errors()[0] if isinstance(e, ValidationError) else {"loc": ("cpu",), "msg": str(e)}
        where = ".".join(str(p) for p in detail["loc"])
        raise UserInputError(f"{source}: invalid benchmark record ({where}: {detail['msg']})") from e
    report = report_files.load(run_dir)
    artifact_id = record.get("artifact")
    by_id = {a.id: a for a in report.artifacts}
    if artifact_id not in by_id:
        raise UserInputError(
            f"{source}: artifact {artifact_id!r} is not in {run_dir}/report.json (ids: {', '.join(by_id)}); "
            f"export this run's artifact to the app and benchmark again"
        )
    artifact = by_id[artifact_id]
    artifact.benchmarks = [
        b for b in artifact.benchmarks
        if (b.target, b.threads, b.delegate) != (bench.target, bench.threads, bench.delegate)
    ] + [bench]
    report_files.write(report, run_dir if run_dir.is_dir() else run_dir.parent)
    return artifact, bench
