"""How often does `deploy compare` flag pure noise? Re-benchmark every artifact of a run and compare.

    python scripts/bench_compare_noise.py RUN_DIR OUT_DIR [--repeats N]

Each repeat measures every (artifact, thread count) of RUN_DIR's report.json again on the host, with
the run's own warm-up and run counts, in fresh processes; writes OUT_DIR/rN/report.json (the same
report with the new benchmarks); and counts the latency figures `deploy compare RUN_DIR OUT_DIR/rN`
flags as regressions and as improvements: under the defaults (only the fewest threads judged), under
the defaults on every thread count, and under a bare 10 % rule on every thread count (k = 0) for
contrast. Nothing changed between the runs, so every flag is a false alarm or an effect of machine load.
"""
import argparse
from pathlib import Path

from pipeline import report as report_files
from pipeline.report.ingest import benchmark_from_record
from pipeline.report.compare import IMPROVED, REGRESSION, Thresholds, compare
from pipeline.targets import host

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("run_dir", type=Path)
parser.add_argument("out_dir", type=Path)
parser.add_argument("--repeats", type=int, default=1)
args = parser.parse_args()

original = report_files.load(args.run_dir)
for repeat in range(1, args.repeats + 1):
    artifacts = []
    for a in original.artifacts:
        fresh = [benchmark_from_record(host.run_benchmark(args.run_dir / a.path, b.threads, b.warmup, b.latency_ms.n))
                 for b in a.benchmarks if b.target == "host"]
        artifacts.append(a.model_copy(update={"benchmarks": fresh}))
    again = original.model_copy(update={"artifacts": artifacts})
    folder = args.out_dir / f"r{repeat}"
    folder.mkdir(parents=True, exist_ok=True)
    report_files.write(again, folder)
    rules_tried = (
        (Thresholds(), "defaults, fewest threads judged"),
        (Thresholds(all_threads=True), "defaults, every thread count"),
        (Thresholds(latency_pct=10, latency_k=0, all_threads=True), "10 % alone, every thread count"),
    )
    for rules, name in rules_tried:
        latency = [c for c in compare(original, again, rules) if c.metric.startswith("p50") and not c.note]
        flagged = sum(c.verdict == REGRESSION for c in latency)
        improved = sum(c.verdict == IMPROVED for c in latency)
        print(f"repeat {repeat}, {name}: {len(latency)} latency figures judged, {flagged} flagged as regressions, "
              f"{improved} as improvements ({folder})")
