"""`deploy explain ARTIFACT`: an int8 artifact's per-layer error (worst first) and the float
fallback's decision, read from the run's report.json, else from the recipe beside the artifact
(the convert stage's result, which holds the same fields)."""
from __future__ import annotations

import json
from pathlib import Path

from pipeline.errors import UserInputError
from pipeline.report import schema

HINT = "give a .tflite inside a build's artifacts/<model>/ folder, or OUT:MODEL/ARTIFACT (e.g. build:mobilenet_v2/mobilenet_v2_int8-ptq)"


def locate(spec: str) -> tuple[Path, str, str]:
    """ARTIFACT -> (run folder, model, artifact file stem)."""
    path = Path(spec)
    if path.suffix == ".tflite" and path.is_file():
        folder = path.resolve().parent
        if folder.parent.name != "artifacts":
            raise UserInputError(f"{spec}: not inside a build's artifacts/<model>/ folder; {HINT}")
        return folder.parent.parent, folder.name, path.stem
    out, sep, rest = spec.rpartition(":")
    model, slash, name = rest.partition("/")
    if not sep or not slash or not out or not model or not name:
        raise UserInputError(f"{spec}: no such artifact file and not OUT:MODEL/ARTIFACT; {HINT}")
    return Path(out), model, name.removesuffix(".tflite")


def find(spec: str) -> tuple[schema.Artifact, schema.Report | None]:
    """The artifact's entry (from report.json, else rebuilt from its recipe) and the report, if any."""
    run, model, stem = locate(spec)
    if (run / "report.json").is_file():
        from pipeline import report as report_files

        report = report_files.load(run)
        for a in report.artifacts:
            if a.model == model and stem in (a.id, Path(a.path).stem):
                return a, report
        known = ", ".join(f"{a.model}/{a.id}" for a in report.artifacts)
        raise UserInputError(f"{spec}: no artifact {model}/{stem} in {run / 'report.json'} (artifacts: {known or 'none'})")
    recipe_path = run / "artifacts" / model / f"{stem}.json"
    if not recipe_path.is_file():
        raise UserInputError(f"{spec}: neither {run / 'report.json'} nor the recipe {recipe_path} exists; {HINT}")
    recipe = json.loads(recipe_path.read_text())
    artifact_file = recipe_path.with_suffix(".tflite")
    return schema.Artifact.model_construct(
        id=recipe.get("id", stem), model=model, format=recipe.get("format", "tflite"), precision=recipe.get("precision", "?"),
        size_bytes=artifact_file.stat().st_size if artifact_file.is_file() else 0, benchmarks=[],
        layer_errors=[schema.LayerError(**e) for e in recipe["layer_errors"]] if recipe.get("layer_errors") else None,
        layer_errors_note=recipe.get("layer_errors_note"),
        fallback=schema.Int8Fallback(**recipe["fallback"]) if recipe.get("fallback") else None,
    ), None


def explain(spec: str) -> list[str]:
    """The lines `deploy explain` prints."""
    from pipeline.report import int8_layers

    artifact, report = find(spec)
    lines = [f"{artifact.model}/{artifact.id} ({artifact.format} {artifact.precision})"]
    if not (artifact.layer_errors or artifact.layer_errors_note or artifact.fallback):
        return lines + ["no per-layer int8 figures: they are measured for TFLite int8-ptq artifacts (docs/int8.md)"]
    lines += int8_layers.fallback_lines(report, artifact)
    table = int8_layers.layer_table(artifact, top=None)
    if table is not None:
        lines += ["", *_text_table(table.headers, table.rows, table.numeric)]
    return lines


def _text_table(headers: list[str], rows: list[list[str]], numeric: list[bool]) -> list[str]:
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows)]

    def line(cells):
        return "  ".join(str(c).rjust(w) if n else str(c).ljust(w) for c, w, n in zip(cells, widths, numeric)).rstrip()

    return [line(headers), *(line(row) for row in rows)]
