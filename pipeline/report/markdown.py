"""report.md: the report.html tables without the plots, for pull requests and CI logs."""
from __future__ import annotations

from pipeline.report import int8_layers, metrics, op_profiles, tables
from pipeline.report.schema import Report


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table_lines(table: tables.Table) -> list[str]:
    lines = [
        "| " + " | ".join(_cell(h) for h in table.headers) + " |",
        "|" + "|".join("---:" if n else "---" for n in table.numeric) + "|",
    ]
    for i, row in enumerate(table.rows):
        cells = [_cell(c) for c in row]
        if i in table.highlight:
            cells[0] = f"**{cells[0]}**"
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def render(report: Report) -> str:
    data = report.data
    lines = [
        "# Device benchmark report",
        "",
        f"Created {report.created} by `{report.command}`; report.json schema {report.schema_version}.",
        f"Data: {data.source}: {data.train} training and {data.val} validation images"
        + (f"; skipped {data.skipped}" if any(data.skipped.values()) else "")
        + (f"; accuracy measured on {data.val_used} of them (--val-max-images)" if data.val_used and data.val_used < data.val else "")
        + ".",
        "",
        "## What to ship",
        "",
        tables.constraints_sentence(report),
        "",
    ]
    for h in tables.headlines(report):
        lines.append(f"- **{h.model}** on {h.target}: " + (f"`{h.artifact}` ({h.what}): " if h.artifact else f"{h.what}: ")
                     + "; ".join(h.costs) + (f". **Warning:** {h.warning}" if h.warning else ""))
    lines += ["", *table_lines(tables.recommendations_table(report)), "## Models", "", *table_lines(tables.model_facts_table(report))]
    for model in report.models:
        lines += [f"## {model.name}", ""]
        if model.training:
            lines += [f"Trained here: {model.training.sentence()}.", ""]
        for target in metrics.targets(report):
            for table in (tables.artifacts_table(report, model.name, target), tables.runtimes_table(report, model.name, target)):
                if table is not None:
                    lines += [f"### {table.title}", "", *table_lines(table)]
        on_arm = tables.target_accuracy_table(report, model.name)
        lines += [f"### {on_arm.title}", "", *table_lines(on_arm)] if on_arm else []
        for table in tables.speedup_tables(report, model.name) + op_profiles.tables(report, model.name):
            lines += [f"### {table.title}", "", *table_lines(table)]
        for section in int8_layers.sections(report, model.name):
            lines += [f"### int8 layers: {section.artifact}", "", *section.lines, ""]
            lines += table_lines(section.table) if section.table else []
        lines += ["### Every benchmark", "", *table_lines(tables.benchmarks_table(report, model.name))]
    if report.failures:
        lines += ["## Artifacts that could not be built or benchmarked", ""] + [f"- {line}" for line in tables.failure_lines(report)] + [""]
    lines += ["## Quality gate", ""] + [f"- {line}" if i else line for i, line in enumerate(tables.gate_lines(report))]
    lines += [
        "",
        "## Provenance",
        "",
        f"CPU: {'; '.join(tables.cpus(report)) or 'no benchmarks'}. "
        "Each latency: warm-up runs, then timed runs, each measurement in a fresh process.",
        "",
        *table_lines(tables.tools_table(report)),
    ]
    return "\n".join(lines)
