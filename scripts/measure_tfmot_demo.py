"""A built-in model on a data set, then its magnitude-sparse and clustered variants through preserving QAT and int8.

Runs the pipeline's own stages with its runner and cache (data, train, sparsity, clustering, QAT
with the default / prune-preserve / cluster-preserve schemes), converts each QAT model to int8
and prints: float top-1 (held-out tenth of the training split, and the validation split) before
and after, int8 top-1 on the validation split (LiteRT), zeros kept in the int8 1x1 kernels,
values per output channel in the int8 clustered kernels, and gzip sizes.

    .venv/bin/python scripts/measure_tfmot_demo.py [--data demo] [--model mobilenet_v2] [--out build-tfmot]
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def int8_top1(data: bytes, split, prep) -> float:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data, num_threads=1)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    correct = 0
    for images, labels in split.batches(64):
        for image, label in zip(prep.apply(images), labels):
            interpreter.set_tensor(inp["index"], image[None])
            interpreter.invoke()
            correct += int(np.argmax(interpreter.get_tensor(out["index"])) == label)
    return correct / len(split)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="demo")
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path("build-tfmot"))
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--sparsity", type=float, default=0.8)
    parser.add_argument("--clusters", type=int, default=16)
    parser.add_argument("--qat-epochs", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from converters import tflite
    from pipeline.compress import clustering, common, sparsity
    from pipeline.data import Preprocessing
    from pipeline.runner import Runner
    from pipeline.stages.clustering import ClusteringConfig, ClusteringStage
    from pipeline.stages.data import DataConfig, DataStage, calibration_images, open_split
    from pipeline.stages.model import TrainConfig, TrainStage, load_float_model
    from pipeline.stages.qat import QatConfig, QatStage, load_qat_model
    from pipeline.stages.sparsity import SparsityConfig, SparsityStage

    runner = Runner(args.out)
    prep = Preprocessing(args.size, args.size, "RGB", (127.5,) * 3, (127.5,) * 3)
    p = prep.to_dict()
    data = runner.run(DataStage(), DataConfig(source=args.data, height=args.size, width=args.size, val_fraction=0.2, seed=0))
    train = runner.run(TrainStage(), TrainConfig(architecture=args.model, input_size=args.size, alpha=None, preprocessing=p,
                                                 epochs=args.epochs, batch_size=64, learning_rate=2e-3, seed=0, patience=5), {"data": data})
    sparse = runner.run(SparsityStage(), SparsityConfig(preprocessing=p, sparsity=args.sparsity, epochs=5, batch_size=64,
                                                        learning_rate=5e-4, seed=0), {"model": train, "data": data})
    clustered = runner.run(ClusteringStage(), ClusteringConfig(preprocessing=p, clusters=args.clusters, epochs=3, batch_size=64,
                                                               learning_rate=1e-4, seed=0), {"model": train, "data": data})
    val = open_split(data, "val")
    calibration = prep.apply(calibration_images(data, 100, 0))
    rows = {}
    for name, source, scheme in (("dense", train, "default"), ("sparse", sparse, "prune-preserve"), ("clustered", clustered, "cluster-preserve")):
        qat = runner.run(QatStage(), QatConfig(calibration_images=200, preprocessing=p, epochs=args.qat_epochs, batch_size=64, learning_rate=1e-4, seed=0,
                                               scheme=scheme), {"model": source, "data": data}, label=name)
        float_model = load_float_model(source)
        int8 = tflite.convert(load_qat_model(qat), "int8-qat", calibration)
        weights = [w for w in sparsity.tflite_weights(int8).values() if w.dtype == np.int8]
        pointwise = [w for w in weights if w.ndim == 4 and w.shape[1:3] == (1, 1)]
        row = {"float_top1_val": round(common.top1(float_model, val, prep), 4),
               "int8_qat_top1_val": round(int8_top1(int8, val, prep), 4),
               "int8_zeros_1x1": round(float(sum((w == 0).sum() for w in pointwise) / sum(w.size for w in pointwise)), 4),
               "int8_max_values_per_channel": max(clustering.max_values_per_channel(w) for w in weights if w.shape[0] > 1),
               "gzip_int8_qat": common.gzip_size(int8), "int8_qat_bytes": len(int8),
               "gzip_fp32": common.gzip_size(tflite.convert(float_model, "fp32"))}
        if source is not train:
            r = source.result
            row.update({"held_out_top1_before": r["top1_before"], "held_out_top1_after": r["top1_after"],
                        "stage_gzip_bytes": r["gzip_bytes"]})
            row.update({"float_sparsity": r["sparsity"]["pruned_layers"]} if name == "sparse" else
                       {"float_distinct_values_max": max(r["distinct_values"].values())})
        rows[name] = row
        print(name, json.dumps(row), flush=True)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
