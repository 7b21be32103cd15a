#!/usr/bin/env python
"""Write an image folder (one subfolder per class) cut from real photographs that ship inside
installed Python packages; nothing is downloaded at run time.

    python scripts/make_photo_set.py OUT [--classes a,b,...] [--per-class N] [--size S]
                                     [--format png|jpg] [--seed K] [--min-scale F] [--max-scale F]

Where the photographs come from (all inside wheels pinned in pyproject.toml):
  scikit-image 0.26.0 (`test` extra), skimage/data/: astronaut.png, chelsea.png (a cat), coffee.png,
      rocket.jpg, motorcycle_left.png + motorcycle_right.png, and the grey-scale brick.png, grass.png,
      gravel.png, camera.png;
  scikit-learn, sklearn/datasets/images/: china.jpg (a temple), flower.jpg;
  matplotlib, mpl-data/sample_data/: grace_hopper.jpg (a portrait).

What the classes are, honestly: each class is ONE source photograph (two for `motorcycle`), and its
images are random square crops of it (random size between --min-scale and --max-scale of the
photo's short side, random position, random horizontal flip, mild brightness/contrast/saturation
jitter), resized to --size. So a model learns "which photo is this crop from", not a general
concept: crops of one class overlap and share lighting, camera and background, and the test split
is not independent of training. It is a real-photograph check (natural image statistics, colour,
texture, JPEG/PNG content) that the 8x8 digits cannot give, not an ImageNet-style benchmark.
Small crops make it harder (a crop of sky, wall or hair can look alike across photos).

A second kind (`--kind faces-textures`, issue 28): `face` and `nonface` are 100 distinct
photographs each (scikit-image's subset of Labeled Faces in the Wild, 25x25 grey, upscaled; so
their images are independent, unlike crops), beside the grey textures `brick`, `grass`, `gravel`
(crops); `--per-class 100` gives 500 images.

The default set (8 colour classes x 60 = 480 images, 96x96 PNG) is for accuracy checks; for a
data-scale benchmark ask for many, e.g. `--per-class 4000 --size 256 --format jpg` (32,000 JPEGs).
The source photos are small (short side 300-512 px), so 256x256 images from small crops are
upscaled and soft; they are fine for data-loading/throughput runs, less so as high-resolution content.
Output is deterministic for a given --seed and class list (each class has its own random stream,
so adding a class does not change the others). The folder is written under a temporary name and
renamed when complete, so a half-written set is never left at OUT.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

# class -> [(package, path inside the installed package)]
SOURCES: dict[str, list[tuple[str, str]]] = {
    "astronaut": [("skimage", "data/astronaut.png")],
    "cat": [("skimage", "data/chelsea.png")],
    "coffee": [("skimage", "data/coffee.png")],
    "rocket": [("skimage", "data/rocket.jpg")],
    "motorcycle": [("skimage", "data/motorcycle_left.png"), ("skimage", "data/motorcycle_right.png")],
    "temple": [("sklearn", "datasets/images/china.jpg")],
    "flower": [("sklearn", "datasets/images/flower.jpg")],
    "portrait": [("matplotlib", "mpl-data/sample_data/grace_hopper.jpg")],
    # grey-scale photographs (opt-in: a colour/grey difference alone would separate them)
    "brick": [("skimage", "data/brick.png")],
    "grass": [("skimage", "data/grass.png")],
    "gravel": [("skimage", "data/gravel.png")],
    "cameraman": [("skimage", "data/camera.png")],
}
DEFAULT_CLASSES = ["astronaut", "cat", "coffee", "rocket", "motorcycle", "temple", "flower", "portrait"]
# class -> (package, .npy inside it, first, end): classes of distinct photographs, one image each, not
# crops of one photo: scikit-image's subset of Labeled Faces in the Wild (25x25 grey, values 0-1;
# 100 faces, then 100 patches of the same photographs without a face).
DISTINCT: dict[str, tuple[str, str, int, int]] = {
    "face": ("skimage", "data/lfw_subset.npy", 0, 100),
    "nonface": ("skimage", "data/lfw_subset.npy", 100, 200),
}
# The second kind of set (issue 28): textures cut from three photos and faces / non-faces of many.
KINDS = {"crops": DEFAULT_CLASSES, "faces-textures": ["face", "nonface", "brick", "grass", "gravel"]}


def package_dir(package: str) -> Path:
    """The installed package's folder, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"make_photo_set: package {package!r} is not installed; run scripts/setup.sh "
                         f"(it installs the `test` extra, which pins scikit-image)")
    return Path(list(spec.submodule_search_locations)[0])


def source_files(classes: list[str]) -> dict[str, list[Path]]:
    out = {}
    for name in classes:
        paths = [package_dir(pkg) / rel for pkg, rel in ([DISTINCT[name][:2]] if name in DISTINCT else SOURCES[name])]
        for p in paths:
            if not p.is_file():
                raise SystemExit(f"make_photo_set: {p} is missing from its installed package")
        out[name] = paths
    return out


def _crop(photo: Image.Image, rng: np.random.Generator, size: int, min_scale: float,
          max_scale: float) -> Image.Image:
    w, h = photo.size
    side = max(8, int(round(min(w, h) * rng.uniform(min_scale, max_scale))))
    x = int(rng.integers(0, w - side + 1))
    y = int(rng.integers(0, h - side + 1))
    img = photo.crop((x, y, x + side, y + side))
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    # Mild jitter: enough that two crops of the same place differ, not enough to change content.
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        img = enhancer(img).enhance(float(rng.uniform(0.85, 1.15)))
    return img.resize((size, size), Image.Resampling.BICUBIC)


def write_set(out: Path, classes: list[str], per_class: int, size: int, fmt: str, seed: int,
              min_scale: float = 0.15, max_scale: float = 0.6) -> dict[str, int]:
    """Write the set to `out` (must not exist yet); return images per class."""
    files = source_files(classes)
    out = Path(out)
    if out.exists():
        raise SystemExit(f"make_photo_set: {out} already exists; remove it or choose another OUT")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        counts = {}
        for name in classes:
            (tmp / name).mkdir()
            counts[name] = 0
            for i, img in enumerate(_distinct(files[name][0], name, per_class, size) if name in DISTINCT else
                                    _crops(files[name], name, per_class, size, seed, min_scale, max_scale)):
                target = tmp / name / f"{name}_{i:05d}.{fmt}"
                if fmt == "jpg":
                    img.save(target, quality=90)
                else:
                    img.save(target)
                counts[name] += 1
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return counts


def _crops(files: list[Path], name: str, count: int, size: int, seed: int, min_scale: float, max_scale: float):
    photos = [Image.open(p).convert("RGB") for p in files]
    # Per-class stream keyed by the class name: adding classes does not change the others.
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    for i in range(count):
        yield _crop(photos[i % len(photos)], rng, size, min_scale, max_scale)


def _distinct(file: Path, name: str, count: int, size: int):
    """The class's own photographs, at most `count` (there are no more), resized."""
    first, end = DISTINCT[name][2:]
    for image in np.load(file)[first : min(end, first + count)]:
        yield Image.fromarray(np.round(image * 255).astype(np.uint8)).convert("RGB").resize((size, size), Image.Resampling.BICUBIC)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--classes", default=None,
                    help=f"comma-separated, from: {', '.join([*SOURCES, *DISTINCT])} [those of --kind]")
    ap.add_argument("--kind", choices=list(KINDS), default="crops",
                    help="crops: 8 colour classes, crops of one or two photos each; faces-textures: faces and "
                         "non-faces (100 distinct photographs each, 25x25 grey upscaled) and three grey textures (crops)")
    ap.add_argument("--per-class", type=int, default=60)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--format", choices=["png", "jpg"], default="png")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-scale", type=float, default=0.15, help="smallest crop, fraction of short side")
    ap.add_argument("--max-scale", type=float, default=0.6, help="largest crop, fraction of short side")
    args = ap.parse_args(argv)
    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else KINDS[args.kind]
    unknown = [c for c in classes if c not in SOURCES and c not in DISTINCT]
    if unknown or len(set(classes)) < 2:
        ap.error(f"--classes: need at least 2 distinct classes from {', '.join([*SOURCES, *DISTINCT])}; got {unknown or classes}")
    if args.per_class < 1 or args.size < 8 or not 0 < args.min_scale <= args.max_scale <= 1:
        ap.error("need --per-class >= 1, --size >= 8 and 0 < --min-scale <= --max-scale <= 1")
    counts = write_set(args.out, classes, args.per_class, args.size, args.format, args.seed,
                       args.min_scale, args.max_scale)
    print(f"{args.out}: {len(counts)} classes, {sum(counts.values())} images "
          f"({args.size}x{args.size} {args.format}, seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
