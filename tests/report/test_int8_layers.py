"""Schema 1.4's per-layer int8 error and float fallback: round trip, old reports, report.md/html and `deploy explain`."""
import json
import subprocess
import sys

import pytest

from pipeline import report as report_files
from pipeline.errors import UserInputError
from pipeline.explain import explain
from pipeline.report import html, markdown, schema
from tests.report import fakes

HARD = "model/hard/Relu;model/hard/BiasAdd;model/hard/Conv2D"
LAYERS = [
    {"layer": HARD, "op": "CONV_2D", "nrmse": 66.3, "max_abs": 2.76, "cosine": 0.68},
    {"layer": "model/conv3/Relu;model/conv3/BiasAdd", "op": "CONV_2D", "nrmse": 0.31, "max_abs": 0.017, "cosine": 0.995},
    {"layer": "model/fc/MatMul;model/fc/BiasAdd", "op": "FULLY_CONNECTED", "nrmse": 0.22, "max_abs": 0.014, "cosine": None},
]
FALLBACK = {"budget_points": 0.5, "status": "met", "float_layers": [HARD], "top1_int8": 0.26, "top1_float": 1.0,
            "top1_after": 1.0, "n": 40, "decision_images": 380, "agreement_int8": 0.25, "agreement_after": 0.9974,
            "top1_decides": False,
            "rounds": [{"float_layers": [], "top1": 0.26, "agreement": 0.25, "size_bytes": 5_832},
                       {"float_layers": [HARD], "top1": 1.0, "agreement": 0.9974, "size_bytes": 7_456}]}


def _report() -> schema.Report:
    int8 = fakes.artifact("int8-ptq", 0.007456, 0.0, [fakes.bench(p50=0.05)])
    int8.layer_errors = [schema.LayerError(**e) for e in LAYERS]
    int8.fallback = schema.Int8Fallback(**FALLBACK)
    qat = fakes.artifact("int8-qat", 0.006, 0.0, [fakes.bench(p50=0.04)])
    qat.layer_errors_note = "no per-layer figure: the debugger cannot instrument a QAT model"
    return fakes.report([fakes.artifact("fp32", 0.02, 0.0, [fakes.bench(p50=0.08)]), int8, qat])


def test_schema_round_trip_and_a_1_3_report_still_loads():
    report = _report()
    assert report.schema_version == "1.12"
    again = schema.Report.model_validate_json(report.model_dump_json())
    assert again == report
    assert again.artifacts[1].layer_errors[2].cosine is None
    old = json.loads(report.model_dump_json())
    old["schema_version"] = "1.3"
    for a in old["artifacts"]:
        for key in ("layer_errors", "layer_errors_note", "fallback"):
            del a[key]
    assert schema.Report.model_validate(old).artifacts[1].fallback is None
    before_1_7 = {k: v for k, v in FALLBACK.items() if k not in ("decision_images", "agreement_int8", "agreement_after", "top1_decides")}
    before_1_7["rounds"] = [{k: v for k, v in r.items() if k != "agreement"} for r in FALLBACK["rounds"]]
    assert schema.Int8Fallback(**before_1_7).agreement_int8 is None  # a 1.4-1.6 record still loads
    with pytest.raises(ValueError):  # the status is one of four words
        schema.Int8Fallback(**{**FALLBACK, "status": "maybe"})


def test_markdown_and_html_show_the_worst_layer_first_and_the_cost():
    report = _report()
    md = markdown.render(report)
    section = md[md.index("### int8 layers: m_int8-ptq"):]
    table_rows = [line for line in section.splitlines() if line.startswith("| model/")]
    assert table_rows[0].startswith("| model/hard/Relu | CONV_2D | 66.3 |") and table_rows[0].endswith("| float |")
    assert "met the 0.5-point budget with 1 layer(s) in float: model/hard/Relu" in section
    assert ("agreement with the float model on 380 training images: int8 25.00 %, shipped 99.74 %; top-1 on 40 held-out "
            "training images: float 100.00 %, int8 26.00 %, shipped 100.00 % (too few to decide on)") in section
    assert "size 0.006 -> 0.007 MB (+27.8 %); host p50 0.0500 ms at 1 thread(s) (fp32: 0.0800 ms)" in section
    assert "the debugger cannot instrument a QAT model" in md
    page = html.render(report)
    assert 'id="int8-layers-m_int8-ptq"' in page and 'id="int8-layers-plot-m_int8-ptq"' in page


def test_deploy_explain_prints_every_layer_worst_first(tmp_path):
    report_files.write(_report(), tmp_path)
    lines = explain(f"{tmp_path}:m/m_int8-ptq")
    assert lines[0] == "m/m_int8-ptq (tflite int8-ptq)"
    rows = [line for line in lines if line.startswith("model/")]
    assert [r.split()[0] for r in rows] == ["model/hard/Relu", "model/conv3/Relu", "model/fc/MatMul"]
    assert rows[0].split()[-1] == "float" and rows[1].split()[-1] == "int8"
    assert any("Rounds: 0 float: agreement 25.00 %, top-1 26.00 %" in line for line in lines)
    assert explain(f"{tmp_path}:m/m_int8-qat")[1].startswith("Per-layer error: no per-layer figure")


def test_deploy_explain_reads_the_recipe_when_there_is_no_report(tmp_path):
    folder = tmp_path / "artifacts" / "m"
    folder.mkdir(parents=True)
    (folder / "m_int8-ptq.tflite").write_bytes(b"\0" * 7_456)
    (folder / "m_int8-ptq.json").write_text(json.dumps({"id": "m_int8-ptq", "format": "tflite", "precision": "int8-ptq",
                                                        "layer_errors": LAYERS, "fallback": FALLBACK}))
    lines = explain(str(folder / "m_int8-ptq.tflite"))
    assert [line.split()[0] for line in lines if line.startswith("model/")][0] == "model/hard/Relu"


def test_deploy_explain_names_an_unknown_artifact_and_exits_2(tmp_path):
    report_files.write(_report(), tmp_path)
    with pytest.raises(UserInputError, match=r"no artifact m/nope in .*report.json \(artifacts: m/m_fp32"):
        explain(f"{tmp_path}:m/nope")
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "explain", f"{tmp_path}:m/nope"], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "no artifact m/nope" in done.stderr
