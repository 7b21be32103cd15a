"""report.html: one self-contained page (styles and plots inlined, no external address) from report.json.

jinja2 autoescapes every value, so model names, labels, paths and commands are shown, never run.
"""
from __future__ import annotations

from pathlib import Path

from pipeline.report import int8_layers, metrics, op_profiles, plots, tables
from pipeline.report.schema import Report

TEMPLATES = Path(__file__).resolve().parent / "templates"


def render(report: Report) -> str:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )
    targets = metrics.targets(report)
    sections = []
    for model in report.models:
        artifact_tables = [t for target in targets for t in (tables.artifacts_table(report, model.name, target),
                                                             tables.runtimes_table(report, model.name, target)) if t]
        artifact_tables += [t for t in [tables.target_accuracy_table(report, model.name)] if t]
        artifact_tables += tables.speedup_tables(report, model.name) + op_profiles.tables(report, model.name)
        int8 = [{"section": s, "plot": int8_layers.plot(next(a for a in report.artifacts if a.id == s.artifact))}
                for s in int8_layers.sections(report, model.name)]
        sections.append({"model": model, "tables": artifact_tables, "benchmarks": tables.benchmarks_table(report, model.name),
                         "int8": int8})
    return env.get_template("report.html.j2").render(
        report=report,
        constraints=tables.constraints_sentence(report),
        headlines=tables.headlines(report),
        recommendations=tables.recommendations_table(report),
        model_facts=tables.model_facts_table(report),
        sections=sections,
        plots=plots.all_plots(report),
        emulated_without_diff=[
            t for t in targets if metrics.is_emulated(report, t)
            and not any(b.output_diff for a in report.artifacts for b in a.benchmarks if b.target == t)
        ],
        gate=tables.gate_lines(report),
        failures=tables.failure_lines(report),
        cpus=tables.cpus(report),
        tools=tables.tools_table(report),
    )
