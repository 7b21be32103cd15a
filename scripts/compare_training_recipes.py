"""Float training recipes for the built-in architectures, side by side (issue 28).

    .venv/bin/python scripts/compare_training_recipes.py [--data demo|FOLDER] [--models a,b] [--recipes r1,r2]
                                                         [--epochs 20] [--alpha 0.5] [--size 32] [--seeds 0]

Trains each architecture with each recipe through the pipeline's own fitting loop
(pipeline.models.training.fit: the build's split, seed, batch size, early stopping hold-out) and
prints the validation top-1 (the split the build scores artifacts on) and the training time.
Recipes (see RECIPES): today's default, then one change at a time, then together. Run it with
nothing else on the machine when the times matter; the top-1 does not depend on load.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# name: training.fit arguments beyond the build's (augment None: the data's default, none on the digits,
# basic on photographs).
RECIPES = {
    "today": {"augment": None},
    "no-early-stop": {"augment": None, "patience": 0},
    "none": {"augment": "none"},
    "basic": {"augment": "basic"},
    "affine": {"augment": "affine"},
    "affine+no-early-stop": {"augment": "affine", "patience": 0},
    "lr1e-2+no-early-stop": {"augment": None, "patience": 0, "learning_rate": 1e-2},
    "affine+lr2e-2+no-early-stop": {"augment": "affine", "patience": 0, "learning_rate": 2e-2},
    "affine+lr5e-3+no-early-stop": {"augment": "affine", "patience": 0, "learning_rate": 5e-3},
    "none+no-early-stop": {"augment": "none", "patience": 0},
    "affine+warmup": {"augment": "affine", "warmup_epochs": 2},
    "affine+warmup+wd": {"augment": "affine", "warmup_epochs": 2, "weight_decay": 0.004},
    "warmup": {"augment": None, "warmup_epochs": 2},
    "warmup+wd": {"augment": None, "warmup_epochs": 2, "weight_decay": 0.004},
    # The build's recipe (docs/training.md; run with --learning-rate 1e-2, the build's rate), then one change.
    "build": {"augment": "affine", "min_held_out": 200},
    "build+ls0.1": {"augment": "affine", "min_held_out": 200, "label_smoothing": 0.1},
    "build+wd0.004": {"augment": "affine", "min_held_out": 200, "weight_decay": 0.004},
    "build+wd0.02": {"augment": "affine", "min_held_out": 200, "weight_decay": 0.02},
}


def splits(data: str, size: int, seed: int, folder: Path):
    """(train, validation) Splits of the build's store, as the data stage cuts them."""
    from pipeline import data as datasets
    from pipeline.datastore import ImageStore, Split, write_store

    images = datasets.demo_digits(size, size) if data == "demo" else datasets.load_image_folder(Path(data), size, size)
    store = folder / f"{Path(data).name}-{size}.npy"
    if not store.exists():
        write_store(store, len(images.labels), iter(images.images))
    train, val = datasets.stratified_split(images.labels, 0.2, seed)
    labels = np.asarray(images.labels)
    return Split(ImageStore(store), train, labels[train]), Split(ImageStore(store), val, labels[val]), len(images.class_names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="demo")
    parser.add_argument("--models", default="mobilenet_v1,mobilenet_v2,shufflenet_v2,squeezenet")
    parser.add_argument("--recipes", default="today,affine,affine+warmup,affine+warmup+wd")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--seeds", default="0")
    args = parser.parse_args()

    from pipeline.data import Preprocessing
    from pipeline.models import architectures, training
    from pipeline.tf_import import keras

    cpu = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True).stdout.split(":")[-1].strip()
    print(f"host: {cpu}; uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}", flush=True)
    prep = Preprocessing(args.size, args.size, "RGB", (127.5,) * 3, (127.5,) * 3)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in (int(s) for s in args.seeds.split(",")):
            train, val, classes = splits(args.data, args.size, seed, Path(tmp))
            x_val = prep.apply(val.read(np.arange(len(val)))[0])
            for name in args.models.split(","):
                for recipe in args.recipes.split(","):
                    settings = dict(RECIPES[recipe])
                    augment = settings.pop("augment") or ("none" if args.data == "demo" else "basic")
                    keras().utils.set_random_seed(seed)
                    model = architectures.build(name, args.size, classes, args.alpha)
                    training.use_fast_batchnorm(model)
                    t0 = time.perf_counter()
                    learning_rate = settings.pop("learning_rate", args.learning_rate)
                    _, stopping = training.fit(model, train, prep, epochs=args.epochs, batch_size=64, learning_rate=learning_rate,
                                               seed=seed, augment=augment, what=f"{name} {recipe}",
                                               **{"patience": 5, **settings})
                    seconds = time.perf_counter() - t0
                    top1 = float(np.mean(training.predict(model, x_val).argmax(1) == val.labels))
                    rows.append((seed, name, recipe, top1, seconds, stopping.get("best_epoch"), stopping.get("epochs_run")))
                    print(f"seed {seed} {name:<14} {recipe:<18} top-1 {100 * top1:6.2f} %  {seconds:6.1f} s  "
                          f"best epoch {stopping.get('best_epoch')} of {stopping.get('epochs_run')}", flush=True)
    print("\nmean over seeds:")
    for name in args.models.split(","):
        for recipe in args.recipes.split(","):
            mine = [r for r in rows if r[1] == name and r[2] == recipe]
            print(f"{name:<14} {recipe:<18} top-1 {100 * np.mean([r[3] for r in mine]):6.2f} %  "
                  f"({', '.join(f'{100 * r[3]:.2f}' for r in mine)})  {np.mean([r[4] for r in mine]):6.1f} s")


if __name__ == "__main__":
    main()
