"""report.json (schema'd), report.md and report.html, written atomically; all three can be rebuilt from report.json alone."""
from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from pipeline.atomic import write_text
from pipeline.errors import UserInputError
from pipeline.report import html, markdown
from pipeline.report.recommend import recommend
from pipeline.report.schema import SCHEMA_VERSION, Constraints, Report

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"


def write(report: Report, run_dir: Path) -> list[Path]:
    write_text(run_dir / REPORT_JSON, report.model_dump_json(indent=2) + "\n")
    write_text(run_dir / REPORT_MD, markdown.render(report))
    write_text(run_dir / REPORT_HTML, html.render(report))
    return [run_dir / name for name in (REPORT_JSON, REPORT_MD, REPORT_HTML)]


def load(run_dir: Path) -> Report:
    path = run_dir / REPORT_JSON if run_dir.is_dir() else run_dir
    try:
        return Report.model_validate_json(path.read_bytes())
    except OSError as e:
        raise UserInputError(f"{path}: cannot read report ({e.strerror or e}); run `deploy build` first") from e
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UserInputError(f"{path}: not a valid report.json ({where + ': ' if where else ''}{first['msg']})") from e


def stored_constraints(report: Report) -> Constraints:
    """The constraints the stored recommendations were made under; a 1.0 report only has its accuracy gate."""
    if report.recommendations:
        return report.recommendations[0].constraints
    return Constraints(max_accuracy_drop=report.quality_gate.max_accuracy_drop_points)


def regenerate(run_dir: Path, overrides: Constraints | None = None) -> list[Path]:
    """Rewrite report.json, report.md and report.html from report.json, with no rerun.

    Constraints given in `overrides` replace the stored ones one by one; the recommendations are
    computed again whenever they change or the report (schema 1.0) has none.
    """
    report = load(run_dir)
    stored = stored_constraints(report)
    given = overrides.model_dump(exclude_none=True) if overrides else {}
    constraints = stored.model_copy(update=given)
    if given or not report.recommendations:
        report = report.model_copy(update={"recommendations": recommend(report, constraints)})
    report = report.model_copy(update={"schema_version": SCHEMA_VERSION})
    folder = run_dir if run_dir.is_dir() else run_dir.parent
    return write(report, folder)


def json_schema() -> str:
    return json.dumps(Report.model_json_schema(), indent=2) + "\n"
