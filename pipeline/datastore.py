"""The data store: uint8 images (N, H, W, C) in one .npy file, written row by row, read in batches.

Rows are written and read with plain file I/O (pwrite/preadv), not a memory map: the pages of a
mapped file count in the process's resident memory, so reading a mapped 5 GB store once makes a
build look (and, under pressure, behave) like it holds 5 GB. Read this way, a batch costs its own
size and the kernel's page cache keeps the rest. The file is an ordinary .npy
(`numpy.load(path, mmap_mode="r")` opens it too).
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import UserInputError

# Room kept free besides the store: the labels, the split and whatever later stages write first.
SPACE_MARGIN_BYTES = 256 * 2**20


def require_space(folder: Path, count: int, row_shape: tuple[int, ...], what: str) -> int:
    """Fail before any work when `folder`'s disk cannot hold `count` uint8 rows of `row_shape`."""
    needed = int(count) * int(np.prod(row_shape))
    free = shutil.disk_usage(folder).free
    if needed + SPACE_MARGIN_BYTES > free:
        shape = "x".join(str(d) for d in row_shape)
        raise UserInputError(
            f"{folder}: the data store for {what} needs {needed / 1e9:.2f} GB ({count} images x {shape} bytes) "
            f"but only {free / 1e9:.2f} GB is free; free some space or choose another --out"
        )
    return needed


class NoReadableRow(ValueError):
    """Every row given to `write_store` was None: there is no image to store."""


def write_store(path: Path, count: int, rows: Iterable[np.ndarray | None]) -> np.ndarray:
    """Write `count` rows (None: an image that could not be read, stored as zeros) to a .npy file;
    every row must have the first real row's shape. Returns which rows are real; raises
    NoReadableRow when none is."""
    valid = np.zeros(count, bool)
    with open(path, "wb") as f:
        row_bytes, header_end = 0, 0
        for index, row in enumerate(rows):
            if row is None:
                continue
            if not row_bytes:  # the first real row fixes the shape (any channel count)
                np.lib.format.write_array_header_1_0(
                    f, {"descr": "|u1", "fortran_order": False, "shape": (count, *row.shape)})
                header_end, row_bytes, shape = f.tell(), row.nbytes, row.shape
            if row.shape != shape or row.dtype != np.uint8:
                raise ValueError(f"row {index}: {row.dtype} {row.shape}, expected uint8 {shape}")
            os.pwrite(f.fileno(), np.ascontiguousarray(row).data, header_end + index * row_bytes)
            valid[index] = True
        if not row_bytes:
            raise NoReadableRow(f"{path}: no readable image to store")
        f.truncate(header_end + count * row_bytes)  # trailing unreadable rows read as zeros
    return valid


class ImageStore:
    """Reads rows of a store written by `write_store` (or any C-ordered uint8 .npy)."""

    def __init__(self, path: Path):
        self.path = path
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = reader(f)
            self.offset = f.tell()
        if dtype != np.uint8 or fortran:
            raise ValueError(f"{path}: not a C-ordered uint8 image array")
        self.count, self.row_shape = shape[0], tuple(shape[1:])
        self.row_bytes = int(np.prod(self.row_shape))

    def read(self, rows: np.ndarray) -> np.ndarray:
        """The images at these row numbers, in this order, as one new uint8 array."""
        out = np.empty((len(rows), *self.row_shape), np.uint8)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for i, row in enumerate(rows):
                if not 0 <= row < self.count:
                    raise IndexError(f"row {row} outside the store's {self.count} rows")
                got = os.preadv(fd, [out[i].data.cast("B")], self.offset + int(row) * self.row_bytes)
                if got != self.row_bytes:
                    raise OSError(f"{self.path}: short read at row {row} (store truncated?)")
        finally:
            os.close(fd)
        return out


def sample_positions(n: int, count: int, seed: int) -> np.ndarray:
    """Sorted positions of a seeded sample of `count` of `n` items (all when fewer): the one rule
    for the validation sample and the images a target is checked on."""
    return np.sort(np.random.default_rng(seed).permutation(n)[: min(count, n)])


@dataclass(frozen=True)
class Split:
    """Some rows of a store with their labels: a training or validation split, or a sample of one."""

    store: ImageStore
    rows: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def read(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Images and labels at these positions of the split."""
        return self.store.read(self.rows[positions]), self.labels[positions]

    def batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(uint8 images, labels) in split order."""
        for start in range(0, len(self), batch_size):
            yield self.read(np.arange(start, min(start + batch_size, len(self))))

    def sample(self, max_images: int, seed: int) -> "Split":
        """A seeded sample of at most `max_images` (0: all), kept in split order."""
        if max_images <= 0 or max_images >= len(self):
            return self
        keep = sample_positions(len(self), max_images, seed)
        return Split(self.store, self.rows[keep], self.labels[keep])
