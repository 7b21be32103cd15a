"""The on-disk data store, the data stage that writes it, and the streaming readers."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline import data, datastore
from pipeline.errors import UserInputError
from pipeline.progress import Progress
from pipeline.runner import Runner
from pipeline.stages import data as data_stage
from pipeline.stages.data import DataConfig, DataStage
from tests.conftest import make_image_folder

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("channels", [1, 3])
def test_store_round_trips_rows_bit_exactly(tmp_path: Path, channels: int):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(11, 5, 7, channels), dtype=np.uint8)
    rows = [None if i in (0, 6) else image for i, image in enumerate(images)]  # unreadable files
    valid = datastore.write_store(tmp_path / "s.npy", len(rows), iter(rows))
    assert valid.tolist() == [i not in (0, 6) for i in range(11)]
    store = datastore.ImageStore(tmp_path / "s.npy")
    assert store.count == 11 and store.row_shape == (5, 7, channels)
    order = np.array([10, 1, 5, 2])
    assert np.array_equal(store.read(order), images[order])
    on_disk = np.load(tmp_path / "s.npy", mmap_mode="r")  # an ordinary .npy
    assert np.array_equal(on_disk[valid], images[valid]) and not on_disk[0].any()


def test_data_stage_store_equals_the_in_memory_loader(tmp_path: Path):
    root = make_image_folder(tmp_path / "d", per_class=50, size=20)  # 150 images: decoded by 2 worker processes
    (root / "red" / "broken.png").write_bytes(b"\x89PNG truncated")
    out = Runner(tmp_path / "out").run(DataStage(), DataConfig(source=str(root), height=12, width=10, val_fraction=0.2, seed=3))
    expected = data.load_image_folder(root, 12, 10)
    assert out.result["skipped"] == expected.skipped == {"non_image": 0, "unreadable": 1}
    train, val = (data_stage.open_split(out, s) for s in ("train", "val"))
    assert len(train) + len(val) == 150 and set(train.rows).isdisjoint(val.rows)
    kept = np.flatnonzero(np.load(out.path(data_stage.LABELS_FILE)) >= 0)
    for split in (train, val):
        position = np.searchsorted(kept, split.rows)  # store row -> index among readable images
        images, labels = split.read(np.arange(len(split)))
        assert np.array_equal(images, expected.images[position]) and np.array_equal(labels, expected.labels[position])
    batches = list(val.batches(7))
    assert np.array_equal(np.concatenate([b[0] for b in batches]), val.read(np.arange(len(val)))[0])


def test_no_room_for_the_store_is_a_user_error_before_any_file(tmp_path: Path, monkeypatch):
    root = make_image_folder(tmp_path / "d", per_class=4)
    free = __import__("shutil").disk_usage(tmp_path).free
    monkeypatch.setattr(datastore, "SPACE_MARGIN_BYTES", free)  # the disk is "full" by exactly the margin
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(UserInputError, match=r"data store for .* needs .* \(12 images x 8x8x3 bytes\)"):
        DataStage().run(DataConfig(source=str(root), height=8, width=8, val_fraction=0.25, seed=0), {}, work)
    assert list(work.iterdir()) == []


def test_require_space_counts_images_times_size(tmp_path: Path):
    with pytest.raises(UserInputError, match=r"needs 150528\.00 GB \(1000000000 images x 224x224x3 bytes\)"):
        datastore.require_space(tmp_path, 10**9, (224, 224, 3), "a huge set")
    assert datastore.require_space(tmp_path, 10, (4, 4, 1), "ten") == 160


KILLED_RUN = """
import sys
from pathlib import Path
from pipeline.runner import Runner
from pipeline.stages.data import DataConfig, DataStage
Runner(Path(sys.argv[1])).run(DataStage(), DataConfig(source=sys.argv[2], height=96, width=96, val_fraction=0.2, seed=0))
"""


def test_a_killed_data_stage_leaves_nothing_trusted(tmp_path: Path):
    root = make_image_folder(tmp_path / "d", per_class=300, size=128)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(out), str(root)], env=env, start_new_session=True)
    deadline = time.time() + 120
    try:
        while not list(out.glob("cache/data/.tmp-*/images.npy")):  # mid-write: the store file exists
            assert proc.poll() is None and time.time() < deadline, "the data stage ended before it could be killed"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: the decode workers die with it
        proc.wait()
    assert not list(out.glob("cache/data/*/lineage.json"))
    again = Runner(out).run(DataStage(), DataConfig(source=str(root), height=96, width=96, val_fraction=0.2, seed=0))
    assert not again.cached and not list(out.glob("cache/data/.tmp-*"))
    assert again.result["train"] + again.result["val"] == 900


def test_validation_sample_is_seeded_and_sorted(tmp_path: Path):
    store = tmp_path / "s.npy"
    datastore.write_store(store, 30, iter(np.zeros((30, 2, 2, 3), np.uint8)))
    split = datastore.Split(datastore.ImageStore(store), np.arange(0, 30, 2), np.arange(15) % 3)
    a, b = split.sample(6, seed=1), split.sample(6, seed=1)
    assert np.array_equal(a.rows, b.rows) and len(a) == 6 and np.all(np.diff(a.rows) > 0)
    assert split.sample(0, seed=1) is split and split.sample(99, seed=1) is split


def test_progress_logs_rate_and_eta(caplog):
    progress = Progress("verify", 100, every_s=0.0)
    with caplog.at_level(logging.INFO, logger="deploy"):
        progress.add(10)
        time.sleep(0.01)
        progress.add(10)
    assert "verify: 20/100 images (" in caplog.text and "images/s, ETA" in caplog.text
