"""Memory and training speed of `deploy build` as the image folder grows (issue 15).

    .venv/bin/python scripts/bench_data_scale.py [--counts 2000,8000,32000] [--work DIR] [--jobs N] [--no-ratio]

For each count: an image folder of 256x256 JPEGs cut from photographs that ship inside installed
packages (scripts/make_photo_set.py when present, else a small fallback here; nothing is
downloaded), then one `deploy build` of MobileNet V2 (alpha 0.35, 224x224): data, 1 training
epoch, 1 QAT epoch, int8 (int8-qat) conversion, verification and a short host benchmark. Printed:
peak memory of the whole build, summed over the build process and all its children (workers run
stages side by side, e.g. the float model's reference evaluation beside QAT) as RSS and as PSS
(`run_sampled`), and training / QAT images/s from the stages' results. With the first count, the
training throughput of today's streaming input is compared with the old whole-array `model.fit`:
one model's epochs alternate between the inputs (`throughput_ratio`).
"""
from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BUILD = ["--model", "mobilenet_v2", "--alpha", "0.35", "--input-size", "224", "--epochs", "1", "--qat-epochs", "1",
         "--precisions", "int8-qat", "--formats", "tflite", "--threads", "1", "--warmup", "1", "--runs", "3"]


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def make_folder(count: int, dest: Path) -> Path:
    """8 classes of count/8 JPEGs, 256x256; reused when already there."""
    if dest.is_dir():
        return dest
    maker = ROOT / "scripts" / "make_photo_set.py"
    if maker.is_file():
        subprocess.run([sys.executable, str(maker), str(dest), "--per-class", str(count // 8), "--size", "256",
                        "--format", "jpg"], check=True)
        return dest
    return _fallback_folder(count, dest)


def _fallback_folder(count: int, dest: Path) -> Path:
    """Random 256x256 crops of scikit-learn's two sample photographs, 4 crop scales each: 8 classes."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(0)
    tmp = dest.with_name(dest.name + ".tmp")
    photos = load_sample_images().images
    for c in range(8):
        photo, scale = photos[c % 2], 0.3 + 0.15 * (c // 2)
        side = int(scale * min(photo.shape[:2]))
        (tmp / f"class{c}").mkdir(parents=True, exist_ok=True)
        for i in range(count // 8):
            y, x = rng.integers(0, photo.shape[0] - side), rng.integers(0, photo.shape[1] - side)
            crop = Image.fromarray(photo[y : y + side, x : x + side]).resize((256, 256), Image.BILINEAR)
            crop.save(tmp / f"class{c}" / f"{i}.jpg", quality=90)
    tmp.rename(dest)
    return dest


def _tree_processes(pid: int) -> list:
    import psutil

    try:
        proc = psutil.Process(pid)
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _tree_memory(pid: int, field: str, info: str) -> dict[int, int]:
    """`field` of psutil's `info` (memory_info, memory_full_info) of each process of a tree, by pid."""
    import psutil

    values = {}
    for p in _tree_processes(pid):
        try:
            values[p.pid] = getattr(getattr(p, info)(), field)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return values


def run_sampled(command: list[str], log: Path) -> tuple[int, float, int, int, dict[int, int]]:
    """(return code, seconds, peak tree RSS, peak tree PSS in bytes, each process's PSS at that
    peak) of a command, its output to `log` (its "[worker PID]" lines say what each process ran).

    RSS sums count pages that processes share (TensorFlow's libraries, each worker's copy-on-write
    parent) once per process, so they over-estimate; PSS splits each shared page between its
    sharers. RSS is sampled every 0.2 s; PSS every 2 s, since reading it walks every mapping of a
    TensorFlow process (about 50 ms each; at 0.2 s the sampler took a quarter of a core)."""
    peak_rss = peak_pss = 0
    pss_at_peak: dict[int, int] = {}
    done = threading.Event()
    with open(log, "w") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)

        def sample():
            nonlocal peak_rss, peak_pss, pss_at_peak
            for tick in itertools.count():
                if done.is_set():
                    return
                peak_rss = max(peak_rss, sum(_tree_memory(proc.pid, "rss", "memory_info").values()))
                if tick % 10 == 0:
                    pss = _tree_memory(proc.pid, "pss", "memory_full_info")
                    if sum(pss.values()) > peak_pss:
                        peak_pss, pss_at_peak = sum(pss.values()), pss
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = proc.wait()
        done.set()
        sampler.join()
    return code, time.perf_counter() - started, peak_rss, peak_pss, pss_at_peak


def stage_results(out: Path, stage: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "cache" / stage).glob("*/result.json"))]


def throughput_ratio(data_dir: Path, rounds: int = 3, batch_size: int = 64) -> dict:
    """Training images/s of one model whose epochs alternate between the old whole-array input (the
    split as float32 in memory, `model.fit` on arrays, as before issue 15) and today's streaming input
    (augment none and basic): same weights, same process, same op determinism as the train stage, so
    load on a shared machine affects all alike. Each epoch is timed from its second batch (tracing
    excluded); the figure per input is the median over `rounds` epochs (run as a child)."""
    sys.path.insert(0, str(ROOT))
    from pipeline.data import Preprocessing
    from pipeline.models import architectures, training
    from pipeline.stages import data as data_stage
    from pipeline.stages.base import StageOutput
    from pipeline.tf_import import keras, tensorflow

    result = json.loads((data_dir / "result.json").read_text())
    train = data_stage.open_split(StageOutput("data", "", data_dir, result, True, 0.0), "train")
    prep = Preprocessing(224, 224, "RGB", (127.5,) * 3, (127.5,) * 3)
    tf_keras = keras()
    tf_keras.utils.set_random_seed(0)
    tensorflow().config.experimental.enable_op_determinism()
    model = architectures.build("mobilenet_v2", 224, len(result["class_names"]), 0.35)
    training.use_fast_batchnorm(model)
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = train.read(np.arange(len(train)))
    x = prep.apply(x)

    class Timer(tf_keras.callbacks.Callback):
        """From the end of the first batch (tracing, first reads) to the epoch's end; both inputs
        keep the short last batch, so the images timed are all but the first batch's."""

        def on_train_batch_end(self, batch, logs=None):
            if batch == 0:
                self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.images_per_s = (len(train) - batch_size) / (time.perf_counter() - self.t0)

    def epoch(source: str) -> float:
        timer = Timer()
        if source == "in_memory":
            model.fit(x, y, epochs=1, batch_size=batch_size, shuffle=True, verbose=0, callbacks=[timer])
        else:
            dataset = training.training_dataset(train, prep, batch_size=batch_size, seed=0, augment=source)
            model.fit(dataset, epochs=1, verbose=0, callbacks=[timer])
        return timer.images_per_s

    sources = ("in_memory", "none", "basic")
    rates: dict[str, list[float]] = {}
    for _ in range(rounds):
        for source in sources:
            rates.setdefault(source, []).append(round(epoch(source), 2))
    median = {source: float(np.median(values)) for source, values in rates.items()}
    return {"images": len(train), "rounds": rates, "median_images_per_s": median,
            "ratio_none": round(median["none"] / median["in_memory"], 3),
            "ratio_basic": round(median["basic"] / median["in_memory"], 3)}


def input_pipeline(folder: Path, out: Path) -> dict:
    """Child mode for --input-only: the data stage, then one epoch of the training input (augment
    basic, batch 64) and one pass of the validation batches, without a model: the memory and speed of
    everything whose size depends on the image count (the model's own memory does not)."""
    sys.path.insert(0, str(ROOT))
    from pipeline.data import Preprocessing
    from pipeline.models import training
    from pipeline.runner import Runner
    from pipeline.stages import data as data_stage
    from pipeline.stages.data import DataConfig, DataStage

    t0 = time.perf_counter()
    data_out = Runner(out).run(DataStage(), DataConfig(source=str(folder), height=224, width=224, val_fraction=0.2, seed=0))
    data_s = time.perf_counter() - t0
    prep = Preprocessing(224, 224, "RGB", (127.5,) * 3, (127.5,) * 3)
    train = data_stage.open_split(data_out, "train")
    t0 = time.perf_counter()
    checksum = 0.0
    for x, _ in training.training_dataset(train, prep, batch_size=64, seed=0, augment="basic"):
        checksum += float(x.numpy()[:, 0, 0, 0].sum())
    train_s = time.perf_counter() - t0
    val = data_stage.open_split(data_out, "val")
    t0 = time.perf_counter()
    data_stage.predict_split(lambda x: x.mean(axis=(1, 2)), val, prep, "val pass")
    val_s = time.perf_counter() - t0
    return {"data_s": round(data_s, 1), "train_input_images_per_s": round(len(train) / train_s, 1),
            "val_images_per_s": round(len(val) / val_s, 1), "store_gb": round(data_out.result["store_bytes"] / 1e9, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="2000,8000,32000")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-data-scale"))
    parser.add_argument("--jobs", type=int, help="the build's --jobs (default: the build's own default); "
                        "1 runs no two stages side by side, so the peak is one stage's")
    parser.add_argument("--no-ratio", action="store_true", help="skip the in-memory vs streaming throughput run")
    parser.add_argument("--input-only", action="store_true",
                        help="data stage + one epoch of the training input + one validation pass, no model (fast)")
    parser.add_argument("--throughput", type=Path, help=argparse.SUPPRESS)  # child mode: a data stage folder
    parser.add_argument("--input-child", type=Path, nargs=2, help=argparse.SUPPRESS)  # child mode: folder, out
    args = parser.parse_args()
    if args.throughput:
        print(json.dumps(throughput_ratio(args.throughput)))
        return
    if args.input_child:
        print(json.dumps(input_pipeline(*args.input_child)))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    if args.input_only:
        for count in (int(c) for c in args.counts.split(",")):
            folder, out = make_folder(count, args.work / f"photos_{count}"), args.work / f"input_{count}"
            before = uptime()
            log = args.work / f"input_{count}.log"
            code, seconds, peak, peak_pss, _ = run_sampled([sys.executable, __file__, "--input-child", str(folder), str(out)], log)
            if code != 0:
                sys.exit(f"{count} images: input pipeline failed ({code}); see {log}")
            row = {"images": count, "peak_rss_gb": round(peak / 1e9, 3), "peak_pss_gb": round(peak_pss / 1e9, 3),
                   "seconds": round(seconds, 1),
                   **json.loads(log.read_text().strip().splitlines()[-1]), "uptime_before": before, "uptime_after": uptime()}
            print(json.dumps(row), flush=True)
        return
    rows = []
    for i, count in enumerate(int(c) for c in args.counts.split(",")):
        folder = make_folder(count, args.work / f"photos_{count}")
        out = args.work / f"build_{count}"
        before = uptime()
        command = [sys.executable, "-m", "pipeline.cli", "build", *BUILD, "--data", str(folder), "--out", str(out),
                   *(["--jobs", str(args.jobs)] if args.jobs else [])]
        code, seconds, peak, peak_pss, pss_at_peak = run_sampled(command, args.work / f"build_{count}.log")
        if code != 0:
            sys.exit(f"{count} images: deploy build failed ({code}); see {args.work / f'build_{count}.log'}")
        [train], [qat] = stage_results(out, "train"), stage_results(out, "qat")
        row = {"images": count, "peak_rss_gb": round(peak / 1e9, 3), "peak_pss_gb": round(peak_pss / 1e9, 3),
               "seconds": round(seconds, 1), "train_images_per_s": train["history"][0]["images_per_s"],
               "qat_images_per_s": qat["history"][0]["images_per_s"],
               "pss_at_peak_gb": {pid: round(v / 1e9, 3) for pid, v in sorted(pss_at_peak.items(), key=lambda kv: -kv[1])},
               "uptime_before": before, "uptime_after": uptime()}
        print(json.dumps(row), flush=True)
        rows.append(row)
        if i == 0 and not args.no_ratio:
            [data_dir] = [p.parent for p in (out / "cache" / "data").glob("*/result.json")]
            before = uptime()
            child = subprocess.run([sys.executable, __file__, "--throughput", str(data_dir)], cwd=ROOT,
                                   capture_output=True, text=True, check=True)
            ratio = {**json.loads(child.stdout.strip().splitlines()[-1]), "uptime_before": before, "uptime_after": uptime()}
            print(json.dumps(ratio), flush=True)
    if len(rows) > 1:
        for kind in ("rss", "pss"):
            key = f"peak_{kind}_gb"
            print(f"peak {kind.upper()} {rows[-1]['images']} / {rows[0]['images']} images: {rows[-1][key] / rows[0][key]:.2f}x")


if __name__ == "__main__":
    main()
