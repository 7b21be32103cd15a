"""ncnn int8 from a finished build's fp32 ncnn artifacts with each calibration method, side by side.

For every `<model>_fp32.ncnn.param` under RUN/artifacts (a `deploy build` on the demo data),
calibrates on the same training images the build used (seeded sample), writes the int8 model
with the pipeline's own writer and measures top-1 and agreement with the fp32 ncnn model on the
validation split, in ncnn. Prints one line per model and method.

    .venv/bin/python scripts/compare_ncnn_calibration.py build/demo [--calibration-images 200] [--float-layers first,last]
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    from converters import ncnn as ncnn_converter
    from pipeline import data
    from pipeline.layout import to_nchw
    from pipeline.runtimes import ncnn as ncnn_runtime

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--calibration-images", type=int, default=200)
    parser.add_argument("--float-layers", default="")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for param in sorted(args.run.glob("artifacts/*/*_fp32.ncnn.param")):
        recipe = json.loads(param.with_suffix(".json").read_text())
        prep = data.Preprocessing.from_dict({**recipe["preprocessing"], "layout": "NHWC"})
        images = data.demo_digits(prep.height, prep.width)
        train, val = data.stratified_split(images.labels, 0.2, args.seed)
        order = np.random.default_rng(args.seed).permutation(len(train))[: args.calibration_images]
        calibration = to_nchw(prep.apply(images.images[train][order]))
        x_val, y_val = to_nchw(prep.apply(images.images[val])), images.labels[val]
        weights = param.with_suffix(".bin")
        fp32 = ncnn_runtime.predict(param, weights, x_val).argmax(1)
        parsed = ncnn_converter.read_param(param)
        kept = ncnn_converter.resolve_float_layers(parsed, [n for n in args.float_layers.split(",") if n], param.name)
        print(f"{recipe['model']}: fp32 top-1 {np.mean(fp32 == y_val):.4f}")
        for method, percentile in (("kl", 0), ("percentile", 99.99), ("percentile", 99.9), ("minmax", 0)):
            scales = ncnn_converter.calibrate(param, weights, calibration, method, percentile, kept)
            with tempfile.TemporaryDirectory() as tmp:
                q_param, q_bin = Path(tmp, "q.ncnn.param"), Path(tmp, "q.ncnn.bin")
                ncnn_converter.write_int8(param, weights, scales, q_param, q_bin)
                int8 = ncnn_runtime.predict(q_param, q_bin, x_val, "int8").argmax(1)
            name = method if method != "percentile" else f"percentile {percentile}"
            print(f"  {name:<17} top-1 {np.mean(int8 == y_val):.4f}  agreement with fp32 {np.mean(int8 == fp32):.4f}")


if __name__ == "__main__":
    main()
