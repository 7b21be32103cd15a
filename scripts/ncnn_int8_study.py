"""What helps ncnn int8: calibration settings tried on the fp32 ncnn artifacts of a finished build.

    python scripts/ncnn_int8_study.py BUILD_OUT [--images 50,100,200,384] [--methods kl,percentile,minmax,mse,auto]
                                      [--data-from OTHER_BUILD_OUT]  (its image store, same data and split)

For each fp32 ncnn artifact in BUILD_OUT's cache, calibrates int8 with each setting (the pipeline's
own calibrate / write_int8) and prints fp32 vs int8 top-1 on the validation split and on the
training images no setting used for calibration (the seeded order's images after the largest count
below the training set), plus agreement with fp32 on the validation split. Nothing is written to
the build folder.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from converters import ncnn as ncnn_converter  # noqa: E402
from converters.ncnn_layer_error import best_scales_per_layer  # noqa: E402
from pipeline.calibration import AUTO_CANDIDATES  # noqa: E402
from pipeline.data import Preprocessing  # noqa: E402
from pipeline.layout import to_nchw  # noqa: E402
from pipeline.runtimes import ncnn as ncnn_runtime  # noqa: E402
from pipeline.stages.base import StageOutput  # noqa: E402
from pipeline.stages.data import open_split  # noqa: E402
from pipeline.stages.ncnn import LAYER_ERROR_IMAGES  # noqa: E402


def _fp32_artifacts(cache: Path):
    for result_file in sorted(cache.glob("ncnn_convert/*/result.json")):
        result = json.loads(result_file.read_text())
        recipe = json.loads((result_file.parent / result["recipe"]).read_text())
        if recipe["precision"] == "fp32":
            yield result_file.parent, result, recipe


def _data_output(cache: Path) -> StageOutput:
    [folder] = list(cache.glob("data/*/result.json"))
    return StageOutput("data", folder.parent.name, folder.parent, json.loads(folder.read_text()), True, 0.0)


def _scales(param: Path, weights: Path, x_cal: np.ndarray, method: str, percentile: float, scratch: Path) -> dict:
    """As the ncnn_convert stage calibrates (auto: per layer the least isolated error)."""
    if method != "auto":
        return ncnn_converter.calibrate(param, weights, x_cal, method, percentile, set())
    candidates = ncnn_converter.calibrate_methods(param, weights, x_cal, list(AUTO_CANDIDATES), percentile, set())
    return best_scales_per_layer(param, weights, candidates, x_cal[:LAYER_ERROR_IMAGES], scratch)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("build", type=Path)
    parser.add_argument("--images", default="50,100,200,384")
    parser.add_argument("--methods", default="kl,percentile,minmax,mse,auto")
    parser.add_argument("--percentile", type=float, default=99.99)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-from", type=Path, help="a build whose data stage holds the same images and split")
    args = parser.parse_args()
    cache = args.build / "cache"
    data = _data_output((args.data_from or args.build) / "cache")
    train, val = open_split(data, "train"), open_split(data, "val")
    order = np.random.default_rng(args.seed).permutation(len(train))
    counts = [min(int(n), len(train)) for n in args.images.split(",")]
    held_from = max([n for n in counts if n < len(train)], default=len(train))
    val_images, val_labels = val.read(np.arange(len(val)))
    held_images, held_labels = train.read(order[held_from:])
    print(f"validation {len(val)} images; held-out training images {len(held_labels)} (after the first {held_from})")
    print("| model | calibration | images | fp32 val | int8 val | agreement val | fp32 held-out | int8 held-out |")
    print("|---|---|---|---|---|---|---|---|")
    for folder, result, recipe in _fp32_artifacts(cache):
        prep = Preprocessing.from_dict({k: v for k, v in recipe["preprocessing"].items() if k != "layout"})
        param, weights = folder / result["files"][0], folder / result["files"][1]
        x_val, x_held = to_nchw(prep.apply(val_images)), to_nchw(prep.apply(held_images))
        f_val = ncnn_runtime.predict(param, weights, x_val).argmax(1)
        f_held = ncnn_runtime.predict(param, weights, x_held).argmax(1)
        for n in counts:
            x_cal = to_nchw(prep.apply(train.read(order[:n])[0]))
            for method in args.methods.split(","):
                with tempfile.TemporaryDirectory() as tmp:
                    scales = _scales(param, weights, x_cal, method, args.percentile, Path(tmp))
                    q_param, q_bin = Path(tmp) / "q.ncnn.param", Path(tmp) / "q.ncnn.bin"
                    ncnn_converter.write_int8(param, weights, scales, q_param, q_bin)
                    q_val = ncnn_runtime.predict(q_param, q_bin, x_val, "int8").argmax(1)
                    q_held = ncnn_runtime.predict(q_param, q_bin, x_held, "int8").argmax(1)
                print(f"| {recipe['model']} | {method} | {n} | {100 * (f_val == val_labels).mean():.1f} | "
                      f"{100 * (q_val == val_labels).mean():.1f} | {100 * (q_val == f_val).mean():.1f} | "
                      f"{100 * (f_held == held_labels).mean():.1f} | {100 * (q_held == held_labels).mean():.1f} |", flush=True)


if __name__ == "__main__":
    main()
