"""Image data: the demo digits or a folder of class subfolders, resized, split, preprocessed."""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from pipeline.errors import UserInputError
from pipeline.hashing import digest_paths, visible_files

log = logging.getLogger("deploy")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


@dataclass(frozen=True)
class Preprocessing:
    """How a runtime turns an image into the model's input; saved with every artifact."""

    height: int
    width: int
    channel_order: str  # "RGB" or "BGR"; meaningless for 1 channel
    mean: tuple[float, ...]  # one value per channel
    std: tuple[float, ...]
    resize: str = "bilinear"
    layout: str = "NHWC"
    pixel_range: str = "0-255"
    formula: str = "x = (pixel - mean) / std, per channel, after resize and channel reordering"
    # 1: grayscale, converted from RGB as luma L = R*299/1000 + G*587/1000 + B*114/1000 (PIL's "L").
    channels: int = 3

    def apply(self, images_uint8: np.ndarray) -> np.ndarray:
        """uint8 NHWC images (RGB, or 1-channel gray) already at (height, width) -> float32 model input."""
        x = images_uint8.astype(np.float32)
        if self.channel_order == "BGR" and self.channels == 3:
            x = x[..., ::-1]
        return (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)

    def folded(self, scale, offset) -> "Preprocessing":
        """This preprocessing followed by x * scale + offset (per channel), as one (mean, std):
        ((p - m) / s) * a + b = (p - (m - b * s / a)) / (s / a)."""
        mean = tuple(float(m - b * s / a) for m, s, a, b in zip(self.mean, self.std, scale, offset))
        std = tuple(float(s / a) for s, a in zip(self.std, scale))
        return replace(self, mean=mean, std=std)

    def to_dict(self) -> dict:
        """JSON-native (lists, not tuples), so it round-trips through report.json unchanged."""
        d = asdict(self)
        return {**d, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        return cls(**{**d, "mean": tuple(d["mean"]), "std": tuple(d["std"])})


@dataclass
class ImageSet:
    """Images as uint8 RGB NHWC at the model size, integer labels and class names."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    skipped: dict[str, int] = field(default_factory=lambda: {"non_image": 0, "unreadable": 0})


def demo_digits(height: int, width: int, channels: int = 3) -> ImageSet:
    """scikit-learn's handwritten digits (shipped in its wheel), as RGB or gray images of the model size."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    gray = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)
    if channels == 1:  # natively gray: resized as gray, no round trip through RGB
        images = np.stack([_resize(g, height, width)[:, :, None] for g in gray])
    else:
        images = np.stack([_resize(_gray_to_rgb(g), height, width) for g in gray])
    return ImageSet(images, digits.target.astype(np.int64), [str(i) for i in range(10)])


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)


def _resize(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.BILINEAR))


def load_image_file(path: Path, height: int, width: int, channels: int = 3) -> np.ndarray:
    """One image file -> uint8 (height, width, channels), RGB or gray (luma of the RGB image);
    raises OSError/ValueError if unreadable."""
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        rgb = img.convert("RGB")  # first RGB: a palette or RGBA image gets the same gray as the apps compute
        pixels = (rgb.convert("L") if channels == 1 else rgb).resize((width, height), Image.BILINEAR)
    array = np.asarray(pixels, dtype=np.uint8)
    return array[:, :, None] if channels == 1 else array


def class_folders(root: Path) -> list[Path]:
    """The class subfolders of an image folder, checked before anything is read."""
    if not root.exists():
        raise UserInputError(f"{root}: data folder does not exist (use 'demo' for the built-in digits)")
    if not root.is_dir():
        raise UserInputError(f"{root}: --data must be a folder with one subfolder per class, or 'demo'")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise UserInputError(f"{root}: no class folders found; put each class's .jpg/.png images in a subfolder named after the class")
    if len(folders) < 2:
        raise UserInputError(f"{root}: only one class folder ('{folders[0].name}'); a classifier needs at least two")
    return folders


def image_files(root: Path) -> tuple[list[Path], np.ndarray, list[str], int]:
    """Every candidate image of every class folder: (paths, labels, class names, non-image files skipped)."""
    folders = class_folders(root)
    paths, labels, non_image = [], [], 0
    for index, folder in enumerate(folders):
        for path in visible_files(folder):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                non_image += 1
                continue
            paths.append(path)
            labels.append(index)
    return paths, np.asarray(labels, np.int64), [f.name for f in folders], non_image


def try_load_image_file(job: tuple[Path, int, int, int]) -> np.ndarray | None:
    """`load_image_file`, or None for a file that is not a readable image (a worker-process job)."""
    path, height, width, channels = job
    try:
        return load_image_file(path, height, width, channels)
    except (OSError, ValueError, SyntaxError) as e:
        log.debug("skipping unreadable image %s: %s", path, e)
        return None


def _first(root: Path, paths: list[Path], count: int = 3) -> str:
    names = ", ".join(str(p.relative_to(root)) for p in paths[:count])
    return names + (", ..." if len(paths) > count else "")


def no_readable_image(root: Path, paths: list[Path]) -> UserInputError:
    """The error for an image folder none of whose image files could be decoded."""
    if not paths:
        return UserInputError(f"{root}: no .jpg/.png images in its class folders; put each class's images in a subfolder named after the class")
    return UserInputError(
        f"{root}: none of its {len(paths)} image files could be read as an image (first: {_first(root, paths)}); "
        f"replace them with readable .jpg/.png files"
    )


def check_readable(root: Path, paths: list[Path], labels: np.ndarray, readable: np.ndarray, class_names: list[str],
                   non_image: int) -> dict[str, int]:
    """Every class keeps at least one image; returns the skipped counts (and warns about them)."""
    for index, name in enumerate(class_names):
        if not readable[labels == index].any():
            unreadable = [p for p, label in zip(paths, labels) if label == index]
            what = f"no readable image ({len(unreadable)} unreadable: {_first(root, unreadable)})" if unreadable else "no .jpg/.png images"
            raise UserInputError(f"{root / name}: class '{name}' has {what}; add readable images or remove the folder")
    skipped = {"non_image": int(non_image), "unreadable": int((~readable).sum())}
    if skipped["non_image"] or skipped["unreadable"]:
        unreadable = [p for p, ok in zip(paths, readable) if not ok]
        log.warning("%s: skipped %d non-image and %d unreadable files%s", root, skipped["non_image"], skipped["unreadable"],
                    f" (unreadable: {_first(root, unreadable)})" if unreadable else "")
    return skipped


def load_image_folder(root: Path, height: int, width: int, channels: int = 3) -> ImageSet:
    """Read every image of every class folder into memory (small sets; the data stage streams to disk)."""
    paths, labels, class_names, non_image = image_files(root)
    decoded = [try_load_image_file((p, height, width, channels)) for p in paths]
    readable = np.asarray([d is not None for d in decoded], bool)
    skipped = check_readable(root, paths, labels, readable, class_names, non_image)
    return ImageSet(np.stack([d for d in decoded if d is not None]), labels[readable], class_names, skipped)


def fingerprint(source: str) -> str:
    """A content hash of the data, so a changed image invalidates every stage after it."""
    if source == "demo":
        from importlib.metadata import version

        return f"sklearn-digits-{version('scikit-learn')}"
    root = Path(source)
    return digest_paths(root, [f for folder in class_folders(root) for f in visible_files(folder)])


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, stratified train/validation indices."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    try:
        train, val = train_test_split(indices, test_size=val_fraction, stratify=labels, random_state=seed)
    except ValueError as e:
        counts = np.bincount(labels)
        raise UserInputError(
            f"--val-fraction {val_fraction}: cannot split {len(labels)} images over {len(counts)} classes "
            f"(smallest class has {counts.min()} images); add images or change --val-fraction ({e})"
        ) from e
    return np.sort(train), np.sort(val)
