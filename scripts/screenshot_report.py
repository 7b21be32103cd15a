"""Screenshot a run's report.html in headless Chromium (for docs/): the first screen, or the whole page.

    python scripts/screenshot_report.py RUN_DIR OUT.png [--height 1600] [--full-page]

It regenerates nothing: run `deploy report RUN_DIR` first if report.html is missing or old.
"""
import argparse
from pathlib import Path

from pipeline.report import browser

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("run_dir", type=Path)
parser.add_argument("out", type=Path)
parser.add_argument("--width", type=int, default=1280)
parser.add_argument("--height", type=int, default=1600)
parser.add_argument("--full-page", action="store_true")
args = parser.parse_args()

visit = browser.visit(args.run_dir / "report.html", screenshot=args.out, width=args.width, height=args.height,
                      full_page=args.full_page)
if visit.errors:
    raise SystemExit(f"report.html rendered with errors: {visit.errors}")
print(f"wrote {args.out} ({len(visit.screenshot)} bytes)")
