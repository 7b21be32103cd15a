"""Golden vectors: what the pipeline computes for a few images, for the demo apps to reproduce exactly.

For each image: the decoded RGB pixels, the preprocessed tensor the pipeline feeds LiteRT (its own
loader and `Preprocessing.apply`), the tensor LiteRT received (int8 after quantization for int8-input
artifacts), LiteRT's raw output, the float scores and the top-k. Plus timings and the summary
`device_runner.summarize` makes of them. Tensors are little-endian binary files beside golden.json,
so float32 values compare bit for bit. The apps' tests (android-demo/core, ios-demo) read this folder.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from pipeline.data import Preprocessing, load_image_file

GOLDEN_FORMAT = 1
TOP_K = 3
METADATA_FILE = "metadata.json"


def top_k(scores: np.ndarray, labels: list[str], k: int = TOP_K) -> list[dict]:
    """Highest scores first; equal scores keep the lower class index first (the apps do the same)."""
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))[:k]
    return [{"index": i, "label": labels[i], "score": float(scores[i])} for i in order]


def synthetic_images(width: int, height: int, seed: int) -> dict[str, np.ndarray]:
    """Deterministic RGB images around the model size: downscaled, upscaled, same size, and a tall
    one (Pillow resamples vertically first when the height shrinks much more than the width)."""
    rng = np.random.default_rng(seed)
    sizes = {
        "downscale": (2 * width + 3, height + height // 2 + 1),
        "upscale": (max(1, width // 2 + 1), max(1, height // 3 + 1)),
        "same_size": (width, height),
        "tall": (width + 1, 4 * height + 5),
    }
    images = {}
    for name, (w, h) in sizes.items():
        yy, xx = np.mgrid[0:h, 0:w]
        gradient = np.stack([255 * xx / max(w - 1, 1), 255 * yy / max(h - 1, 1), 128 + 0 * xx], axis=-1)
        noise = rng.normal(0, 40, size=(h, w, 3))
        images[f"{name}_{w}x{h}"] = np.clip(gradient + noise, 0, 255).round().astype(np.uint8)
    return images


def _write_tensor(path: Path, array: np.ndarray) -> str:
    path.write_bytes(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
    return path.name


def _case(artifact: Path, prep: Preprocessing, labels: list[str], name: str, rgb: np.ndarray, out_dir: Path) -> dict:
    from PIL import Image

    from pipeline.runtimes import litert

    png = out_dir / f"{name}.png"
    Image.fromarray(rgb).save(png)
    resized = load_image_file(png, prep.height, prep.width, prep.channels)  # the pipeline's own loader
    x = prep.apply(resized[None])
    run = litert.run_once(artifact, x)
    scores = run["scores"][0].astype(np.float32)
    input_block = {"float32": _write_tensor(out_dir / f"{name}.input.f32", x.astype(np.float32))}
    if run["input_quantization"] is not None:
        scale, zero_point = run["input_quantization"]
        input_block["int8"] = _write_tensor(out_dir / f"{name}.input.i8", run["input"])
        input_block["quantization"] = {"scale": scale, "zero_point": zero_point}
    output_block = {
        "dtype": np.dtype(run["output"].dtype).name,
        "raw": _write_tensor(out_dir / f"{name}.output.raw", run["output"]),
        "scores_float32": _write_tensor(out_dir / f"{name}.scores.f32", scores),
    }
    if run["output_quantization"] is not None:
        scale, zero_point = run["output_quantization"]
        output_block["quantization"] = {"scale": scale, "zero_point": zero_point}
    return {
        "name": name, "width": int(rgb.shape[1]), "height": int(rgb.shape[0]),
        "image_png": png.name, "image_rgb": _write_tensor(out_dir / f"{name}.rgb", rgb),
        "input": input_block, "output": output_block, "top_k": top_k(scores, labels),
    }


def _latency(seed: int) -> dict:
    from pipeline.targets.device_runner import summarize

    # 301 timings: more than numpy's 128-element pairwise block, so the summation order matters.
    rng = np.random.default_rng(seed)
    ns = (rng.lognormal(mean=14.5, sigma=0.3, size=301)).astype(np.int64)
    return {"ns": [int(v) for v in ns], "summary": summarize(np.asarray(ns, dtype=np.float64) / 1e6)}


def write(artifact: Path, metadata_path: Path, out_dir: Path, seed: int = 0) -> Path:
    """Write golden vectors for one artifact into out_dir (replaced); returns golden.json's path."""
    metadata = json.loads(metadata_path.read_text())
    prep = Preprocessing.from_dict(metadata["preprocessing"])
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    shutil.copyfile(metadata_path, out_dir / METADATA_FILE)
    cases = [
        _case(artifact, prep, metadata["labels"], name, rgb, out_dir)
        for name, rgb in synthetic_images(prep.width, prep.height, seed).items()
    ]
    index = {
        "format": GOLDEN_FORMAT, "artifact": metadata["id"], "metadata": METADATA_FILE,
        "top_k": TOP_K, "cases": cases, "latency": _latency(seed),
    }
    path = out_dir / "golden.json"
    path.write_text(json.dumps(index, indent=2) + "\n")
    return path
