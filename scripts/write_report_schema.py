"""Regenerate docs/report.schema.json from pipeline/report/schema.py (a test checks they agree)."""
from pathlib import Path

from pipeline.report import json_schema

target = Path(__file__).resolve().parent.parent / "docs" / "report.schema.json"
target.write_text(json_schema())
print(f"wrote {target}")
