"""report.html in a real headless Chromium (Debian's package, installed by scripts/setup-system.sh).

It must render with no console error, request nothing but itself and its inline images, show every
plot, and its tables must hold the numbers of report.json. The screenshot is saved beside the test's
copy of the report and checked for the highlighted recommendation.
"""
import io
import math

import pytest
from PIL import Image

from pipeline.report import browser, html
from pipeline.report.schema import Report
from tests.report.test_html import HOSTILE, hostile_report

READ_PAGE = """(() => {
  const cells = row => [...row.cells].map(c => c.innerText.trim());
  const tables = {};
  for (const t of document.querySelectorAll('table')) {
    tables[t.id] = {headers: [...t.querySelectorAll('thead th')].map(th => th.innerText.trim()),
                    rows: [...t.querySelectorAll('tbody tr')].map(cells)};
  }
  return {
    tables,
    images: [...document.images].map(i => ({alt: i.alt, loaded: i.complete && i.naturalWidth > 0})),
    cards: [...document.querySelectorAll('.card .artifact')].map(e => e.innerText.trim()),
    text: document.body.innerText,
  };
})()"""


def _rows(table: dict) -> dict[str, dict[str, str]]:
    """First cell -> {header: cell}."""
    return {row[0]: dict(zip(table["headers"], row)) for row in table["rows"]}


def _close(cell: str, value: float) -> bool:
    """The cell shows `value` to the precision it is printed with (at least 3 significant digits)."""
    return math.isclose(float(cell.rstrip("x")), value, rel_tol=5e-3, abs_tol=0.0051)


def _assert_clean(visit, page):
    assert visit.errors == [] and visit.dialogs == [], (visit.errors, visit.dialogs)
    assert not [c for c in visit.console if c[0] in ("error", "warning")], visit.console
    assert {u for u in visit.requests if not u.startswith("data:")} == {page.resolve().as_uri()}, visit.requests


@pytest.mark.slow
def test_report_renders_in_chromium_with_the_numbers_of_report_json(run_copy):
    page = run_copy / "report.html"
    report = Report.model_validate_json((run_copy / "report.json").read_text())
    shot = run_copy / "report-screenshot.png"
    visit = browser.visit(page, READ_PAGE, screenshot=shot)
    _assert_clean(visit, page)
    seen = visit.value
    per_layer = sum(1 for a in report.artifacts if a.layer_errors)  # an int8 error plot per such artifact (docs/int8.md)
    assert len(seen["images"]) == 3 + per_layer and all(i["loaded"] for i in seen["images"]), seen["images"]

    [rec] = report.recommendations
    assert seen["cards"] == [rec.artifact]
    assert _rows(seen["tables"]["recommendations"])["host"]["artifact"] == rec.artifact

    artifacts = _rows(seen["tables"]["artifacts-tiny-host"])
    assert set(artifacts) == {a.id for a in report.artifacts}
    for a in report.artifacts:
        row, one_thread = artifacts[a.id], next(b for b in a.benchmarks if b.threads == 1)
        assert row["precision"] == a.precision and row["file"] == a.path
        assert _close(row["size MB"], a.size_bytes / 1e6)
        assert _close(row["top-1 %"], 100 * a.accuracy.top1) and _close(row["agreement %"], 100 * a.accuracy.agreement)
        assert _close(row["top-1 change (points)"], -a.accuracy_drop_points)
        assert _close(row["p50 ms"], one_thread.latency_ms.p50) and _close(row["p90 ms"], one_thread.latency_ms.p90)
    fp32 = next(a for a in report.artifacts if a.precision == "fp32")
    fp32_p50 = next(b.latency_ms.p50 for b in fp32.benchmarks if b.threads == 1)
    for a in report.artifacts:
        p50 = next(b.latency_ms.p50 for b in a.benchmarks if b.threads == 1)
        assert _close(artifacts[a.id]["speedup vs fp32"], fp32_p50 / p50)
        assert _close(artifacts[a.id]["size vs fp32"], a.size_bytes / fp32.size_bytes)

    bench_rows = seen["tables"]["benchmarks-tiny"]["rows"]
    headers = seen["tables"]["benchmarks-tiny"]["headers"]
    assert len(bench_rows) == sum(len(a.benchmarks) for a in report.artifacts) == 10
    for a in report.artifacts:
        for b in a.benchmarks:
            [row] = [dict(zip(headers, r)) for r in bench_rows if r[0] == a.id and r[headers.index("threads")] == str(b.threads)]
            arithmetic = f", {b.arithmetic} arithmetic" if b.arithmetic else ""  # fp16 artifacts say what computed them
            assert row["delegate"] == b.delegate + arithmetic and row["n"] == str(b.latency_ms.n)
            for key in ("p50", "p90", "p99", "mean", "std"):
                assert _close(row[f"{key} ms"], getattr(b.latency_ms, key)), (a.id, b.threads, key)

    facts = _rows(seen["tables"]["model-facts"])["tiny"]
    model = report.models[0]
    assert facts["parameters"] == f"{model.params:,}" and _close(facts["MMACs"], model.macs / 1e6)
    assert facts["classes"] == "3: blue, green, red"
    assert _rows(seen["tables"]["tools"])["tensorflow"]["version"] == report.tools["tensorflow"]

    image = Image.open(io.BytesIO(shot.read_bytes())).convert("RGB")
    assert image.width == 1280 and image.height > 2000  # the whole page, not just the first screen
    recommended_row_green = (218, 251, 225)
    assert recommended_row_green in {pixel for _, pixel in image.getcolors(1 << 20)}, "the recommended row is highlighted"
    print(f"screenshot: {shot}")


def test_hostile_names_are_shown_as_text_and_run_nothing(tmp_path):
    page = tmp_path / "report.html"
    page.write_text(html.render(hostile_report()))
    visit = browser.visit(page, READ_PAGE)
    _assert_clean(visit, page)
    assert visit.value["text"].count(HOSTILE) >= 5
    assert visit.value["cards"] == [f"{HOSTILE}_fp32", f"{HOSTILE}_fp32"]  # host and the ssh board
