"""report.html and report.md from report.json alone: self-contained, escaped, reproducible, old reports load."""
import json
import re
import subprocess
import sys

import pytest

from pipeline import report as report_files
from pipeline.report import html, markdown
from pipeline.report.schema import SCHEMA_VERSION, Report
from tests.report.fakes import artifact, bench, model, report

DEPLOY = [sys.executable, "-m", "pipeline.cli"]
HOSTILE = '<script>alert("x")</script>'


def deploy(*args):
    return subprocess.run([*DEPLOY, *map(str, args)], capture_output=True, text=True, timeout=300)


def _external_references(page: str) -> list[str]:
    """Every src/href/url() that is not inline data or a link inside the page."""
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", page) + re.findall(r"url\(([^)]*)\)", page)
    return [r for r in refs if not r.startswith(("data:", "#"))]


@pytest.mark.slow
def test_html_is_self_contained(tiny_run):
    _, out = tiny_run
    page = (out / "report.html").read_text()
    assert _external_references(page) == []
    without_images = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    assert not re.search(r"[a-z]+://", without_images), "no address of any kind: the page must open offline"
    report, _ = tiny_run
    per_layer = sum(1 for a in report.artifacts if a.layer_errors)  # one per-layer int8 error plot each (docs/int8.md)
    assert per_layer >= 1  # the tiny build has an int8-ptq artifact
    # accuracy-latency and spread on host, size per precision, then the per-layer plots
    assert page.count('src="data:image/png;base64,') == 3 + per_layer


@pytest.mark.slow
def test_deploy_report_regenerates_all_three_files_from_report_json_alone(run_copy):
    originals = {name: (run_copy / name).read_text() for name in ("report.json", "report.md", "report.html")}
    (run_copy / "report.md").unlink()
    (run_copy / "report.html").unlink()
    result = deploy("report", run_copy)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(run_copy / n) for n in ("report.json", "report.md", "report.html")]
    for name, text in originals.items():
        assert (run_copy / name).read_text() == text, name


@pytest.mark.slow
def test_constraints_given_to_deploy_report_remake_the_recommendation(run_copy):
    stored = Report.model_validate_json((run_copy / "report.json").read_text())
    result = deploy("report", run_copy, "--max-size", "0.000001", "--max-accuracy-drop", "0.5")
    assert result.returncode == 0, result.stderr
    [rec] = Report.model_validate_json((run_copy / "report.json").read_text()).recommendations
    assert rec.artifact is None and rec.constraints.max_size_mb == 1e-6 and rec.constraints.max_accuracy_drop == 0.5
    assert rec.reason.startswith("none of 5 artifacts meets top-1 drop <= 0.5 points, size <= 1e-06 MB")
    assert "nothing qualifies" in (run_copy / "report.html").read_text()
    assert rec.reason in (run_copy / "report.md").read_text()
    # a later call with another flag keeps the stored limits it does not name
    deploy("report", run_copy, "--max-latency", "1000")
    [rec] = Report.model_validate_json((run_copy / "report.json").read_text()).recommendations
    assert rec.constraints.max_size_mb == 1e-6 and rec.constraints.max_latency_ms == 1000
    assert stored.recommendations[0].artifact is not None
    assert deploy("report", run_copy, "--max-size", "-1").returncode == 2


@pytest.mark.slow
def test_a_schema_1_0_report_still_loads_and_gets_recommendations(run_copy):
    old = json.loads((run_copy / "report.json").read_text())
    old["schema_version"] = "1.0"
    del old["recommendations"]
    old["quality_gate"]["max_accuracy_drop_points"] = 0.0
    (run_copy / "report.json").write_text(json.dumps(old))
    result = deploy("report", run_copy)
    assert result.returncode == 0, result.stderr
    upgraded = Report.model_validate_json((run_copy / "report.json").read_text())
    assert upgraded.schema_version == SCHEMA_VERSION
    [rec] = upgraded.recommendations
    assert rec.constraints.max_accuracy_drop == 0.0  # taken from the 1.0 report's gate
    lossless = [a for a in upgraded.artifacts if a.accuracy_drop_points <= 0 and (a.int8_check is None or a.int8_check.fully_int8)]
    assert (rec.artifact is None) == (not lossless)


def test_report_command_does_not_import_tensorflow(tmp_path):
    r = report([artifact("fp32", 1.0, 0.0, [bench()])])
    report_files.write(r, tmp_path)
    code = ("import sys; from pipeline import report; report.regenerate(__import__('pathlib').Path(sys.argv[1])); "
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def hostile_report():
    """Every user-given string (model and file names, labels, paths, the command) is markup."""
    m = model(HOSTILE)
    m.labels = [HOSTILE, "<b>bold</b>", "a|b"]
    m.source = f"/models/{HOSTILE}.keras"
    a = artifact("fp32", 1.0, 0.0, [bench(), bench("ssh:<i>pi</i>@board", p50=5.0)], model=HOSTILE)
    a.path = f"artifacts/{HOSTILE}/x.tflite"
    r = report([a], models=[m])
    r.command = f"deploy build --model '{HOSTILE}'"
    from pipeline.report.recommend import recommend
    from pipeline.report.schema import Constraints

    return r.model_copy(update={"recommendations": recommend(r, Constraints())})


def test_every_label_path_and_name_is_escaped():
    page = html.render(hostile_report())
    assert "<script>" not in page and "<b>bold</b>" not in page and "<i>pi</i>" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "ssh:&lt;i&gt;pi&lt;/i&gt;@board" in page


def test_markdown_holds_the_same_tables():
    r = hostile_report()
    md = markdown.render(r)
    assert "a\\|b" in md  # a pipe in a label cannot break the table
    for title in ("## What to ship", "## Models", "### Every benchmark", "## Quality gate", "## Provenance"):
        assert title in md
    assert "| target | model | artifact | why |" in md
    assert "speedup vs fp32" in md and "size vs fp32" in md and "p90 ms" in md


def test_emulated_target_shows_output_difference_instead_of_speed():
    from pipeline.report import tables

    r = report([
        artifact("fp32", 1.0, 0.0, [bench(p50=1.0), bench("arm64-emu", p50=80.0, emulated=True, max_abs=0.0)]),
        artifact("int8-qat", 0.3, 0.4, [bench(p50=0.5), bench("arm64-emu", p50=300.0, emulated=True, max_abs=0.0039)]),
    ])
    table = tables.artifacts_table(r, "m", "arm64-emu")
    assert "emulated" in table.title and "speedup vs fp32" not in table.headers
    column = table.headers.index("softmax max abs")
    assert [row[column] for row in table.rows] == ["0", "0.0039"]
    what = table.headers.index("compared with host")  # a report before 1.3 compared softmax outputs only
    assert {row[what] for row in table.rows} == {"softmax outputs (before schema 1.3)"}
    page = html.render(r)
    assert 'id="output-diff-arm64-emu"' in page and 'id="accuracy-latency-arm64-emu"' not in page
    assert 'id="accuracy-latency-host"' in page


def test_logits_comparison_shows_per_artifact_and_target_with_the_image_count():
    from pipeline.report import markdown, tables

    logits = dict(compared="logits", inputs="validation", n=64, top1_agreement=0.984375, target_top1=0.75, host_top1=0.765625)
    r = report([
        artifact("fp32", 1.0, 0.0, [bench(p50=1.0), bench("arm64-emu", p50=80.0, emulated=True, max_abs=1e-16,
                                                          logits_max_abs=2.5e-6, logits_max_rel=3e-7, **logits)]),
        artifact("int8-qat", 0.3, 0.4, [bench(p50=0.5), bench("ssh:pi@board:22", p50=3.0, max_abs=0.0, logits_max_abs=0.25,
                                                              logits_max_rel=0.02, logits_max_steps=2, **logits)]),
    ])
    emu = tables.artifacts_table(r, "m", "arm64-emu")
    row = dict(zip(emu.headers, emu.rows[0]))
    assert row["compared with host"] == "logits, 64 validation images" and row["n"] == "64"
    assert (row["logits max abs"], row["logits max rel"], row["int8 steps"]) == ("2.5e-06", "3e-07", "")
    assert row["top-1 agreement %"] == "98.44" and row["top-1 % (target / host)"] == "75.00 / 76.56"
    board = tables.artifacts_table(r, "m", "ssh:pi@board:22")  # a board keeps its speed columns beside the check
    row = dict(zip(board.headers, board.rows[0]))
    assert row["int8 steps"] == "2" and row["logits max abs"] == "0.25" and "speedup vs fp32" in board.headers
    assert len(board.numeric) == len(board.headers) == len(board.rows[0])
    assert "logits max abs" in markdown.render(r)
    page = html.render(r)
    assert 'id="output-diff-arm64-emu"' in page and 'id="output-diff-ssh:pi@board:22"' in page
    assert "Compared: logits, 64 validation images" in page  # the plot says what it compares


def test_a_report_of_schema_1_2_still_loads(tmp_path):
    from pipeline import report as report_files

    old = report([artifact("fp32", 1.0, 0.0, [bench(p50=1.0), bench("arm64-emu", emulated=True, max_abs=0.0)])])
    data = json.loads(old.model_dump_json())
    data["schema_version"] = "1.2"
    data["artifacts"][0]["benchmarks"][1]["output_diff"] = {"max_abs": 1e-19, "max_lsb": None, "host_delegate": "xnnpack"}
    (tmp_path / "report.json").write_text(json.dumps(data))
    loaded = report_files.load(tmp_path)
    diff = loaded.artifacts[0].benchmarks[1].output_diff
    assert loaded.schema_version == "1.2" and diff.max_abs == 1e-19 and diff.compared is None and diff.logits_max_abs is None
    assert "softmax outputs (before schema 1.3)" in html.render(loaded)


def test_a_float_model_at_chance_level_gets_a_warning():
    from pipeline.report import tables
    from pipeline.report.recommend import recommend
    from pipeline.report.schema import Constraints

    guessing, learned = model("guess", float_top1=0.34), model("learned", float_top1=0.9)  # 3 classes: chance is 33 %
    r = report([artifact("fp32", 1.0, 0.0, [bench()], model="guess", float_top1=0.34),
                artifact("fp32", 1.0, 0.0, [bench()], model="learned")], models=[guessing, learned])
    r = r.model_copy(update={"recommendations": recommend(r, Constraints())})
    warnings = {h.model: h.warning for h in tables.headlines(r)}
    assert warnings["learned"] is None
    assert warnings["guess"].startswith("the float model itself is at chance level (34.00 % top-1 for 3 classes)")
    assert warnings["guess"] in html.render(r) and warnings["guess"] in markdown.render(r)


def test_the_runtimes_table_compares_each_precision_across_runtimes():
    from pipeline.report import tables

    def as_format(a, fmt: str):
        return a.model_copy(update={"format": fmt, "id": f"{a.id}.{fmt}"})

    r = report([
        artifact("fp32", 2.0, 0.0, [bench(p50=1.0)]), artifact("int8-ptq", 0.6, 0.2, [bench(p50=0.5)]),
        artifact("dynamic-int8", 0.6, 0.1, [bench(p50=0.8)]),  # no counterpart in other runtimes: not a row
        as_format(artifact("fp32", 2.1, 0.0, [bench(p50=0.9)]), "mnn"), as_format(artifact("int8", 0.7, 0.5, [bench(p50=0.7)]), "mnn"),
    ])
    table = tables.runtimes_table(r, "m", "host")
    assert table.headers == ["precision", "TFLite (LiteRT)", "MNN"]
    assert table.rows == [["fp32", "fp32: 1.000 ms, 2.000 MB, 90.00 %", "fp32: 0.900 ms, 2.100 MB, 90.00 %"],
                          ["int8", "int8-ptq: 0.500 ms, 0.600 MB, 89.80 %", "int8: 0.700 ms, 0.700 MB, 89.50 %"]]
    assert "### m on host: the runtimes side by side" in markdown.render(r) and 'id="runtimes-m-host"' in html.render(r)
    assert tables.runtimes_table(report([artifact("fp32", 2.0, 0.0, [bench()])]), "m", "host") is None  # one runtime
