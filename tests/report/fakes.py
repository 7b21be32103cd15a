"""Small hand-made reports for the pure logic (recommendation, comparison rules).

Tests of what a real build produces use the `tiny_run` fixture instead.
"""
from __future__ import annotations

from pipeline.report import schema


def latency(p50: float, p90: float | None = None, n: int = 50, quartiles: tuple[float, float] | None = None) -> schema.Latency:
    p90 = p50 * 1.05 if p90 is None else p90
    p25, p75 = quartiles or (None, None)
    return schema.Latency(p50=p50, p90=p90, p99=p90 * 1.1, mean=p50, std=(p90 - p50) / 1.28, n=n, p25=p25, p75=p75)


def bench(target: str = "host", p50: float = 1.0, threads: int = 1, emulated: bool = False, p90: float | None = None,
          max_abs: float | None = None, quartiles: tuple[float, float] | None = None, **logits) -> schema.Benchmark:
    """`logits`: the 1.3 output_diff fields (compared, n, logits_max_abs...) besides the softmax's `max_abs`."""
    return schema.Benchmark(
        target=target, runtime="ai-edge-litert", runtime_version="2.3.0", delegate="xnnpack", threads=threads, warmup=1,
        latency_ms=latency(p50, p90, quartiles=quartiles), init_ms=1.0, peak_rss_mb=50.0, cpu="test cpu", emulated=emulated,
        output_diff=None if max_abs is None else schema.OutputDiff(max_abs=max_abs, **logits),
    )


def artifact(precision: str, size_mb: float, drop: float, benchmarks: list[schema.Benchmark], model: str = "m",
             fully_int8: bool | None = None, float_top1: float = 0.9) -> schema.Artifact:
    if fully_int8 is None and precision.startswith("int8"):
        fully_int8 = True
    return schema.Artifact(
        id=f"{model}_{precision}", model=model, format="tflite", precision=precision,
        path=f"artifacts/{model}/{model}_{precision}.tflite", metadata_path=f"artifacts/{model}/{model}_{precision}.json",
        size_bytes=int(size_mb * 1e6), io={"input": "float32", "output": "float32"}, calibration_images=10,
        accuracy=schema.Accuracy(top1=float_top1 - drop / 100, agreement=0.95, n=100), accuracy_drop_points=drop,
        int8_check=None if fully_int8 is None else schema.Int8Check(fully_int8=fully_int8, float_ops=[] if fully_int8 else ["CONV_2D#0"]),
        benchmarks=benchmarks,
    )


def model(name: str = "m", float_top1: float = 0.9) -> schema.ModelInfo:
    return schema.ModelInfo(
        name=name, source=name, input_shape=[32, 32, 3], num_classes=3, labels=["a", "b", "c"], params=1000, macs=10**6,
        float_accuracy=schema.Accuracy(top1=float_top1, agreement=1.0, n=100), qat=schema.QatStatus(status="ok"),
        preprocessing={},
    )


def report(artifacts: list[schema.Artifact], models: list[schema.ModelInfo] | None = None) -> schema.Report:
    names = dict.fromkeys(a.model for a in artifacts)
    return schema.Report(
        created="2026-01-01T00:00:00+00:00", command="deploy build", tools={"ai-edge-litert": "2.3.0"},
        data=schema.DataInfo(source="demo", train=10, val=100, skipped={}),
        models=models or [model(n) for n in names], artifacts=artifacts,
        quality_gate=schema.QualityGate(max_accuracy_drop_points=None, failures=[]),
    )
