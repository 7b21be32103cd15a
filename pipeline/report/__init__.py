"""report.json (schema'd) and report.md, written atomically; report.md can be rebuilt from report.json alone."""
from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from pipeline.atomic import write_text
from pipeline.errors import UserInputError
from pipeline.report.markdown import render
from pipeline.report.schema import Report

REPORT_JSON = "report.json"
REPORT_MD = "report.md"


def write(report: Report, run_dir: Path) -> None:
    write_text(run_dir / REPORT_JSON, report.model_dump_json(indent=2) + "\n")
    write_text(run_dir / REPORT_MD, render(report))


def load(run_dir: Path) -> Report:
    path = run_dir / REPORT_JSON if run_dir.is_dir() else run_dir
    try:
        return Report.model_validate_json(path.read_text())
    except OSError as e:
        raise UserInputError(f"{path}: cannot read report ({e.strerror or e}); run `deploy build` first") from e
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UserInputError(f"{path}: not a valid report.json ({where}: {first['msg']})") from e


def regenerate(run_dir: Path) -> Path:
    """Rewrite report.md from report.json, with no rerun."""
    report = load(run_dir)
    folder = run_dir if run_dir.is_dir() else run_dir.parent
    write_text(folder / REPORT_MD, render(report))
    return folder / REPORT_MD


def json_schema() -> str:
    return json.dumps(Report.model_json_schema(), indent=2) + "\n"
