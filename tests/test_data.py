from pathlib import Path

import numpy as np
import pytest

from pipeline import data
from pipeline.errors import UserInputError
from tests.conftest import make_image_folder


def test_demo_digits_are_real_digits_at_model_size():
    images = data.demo_digits(32, 32)
    assert images.images.shape == (1797, 32, 32, 3) and images.images.dtype == np.uint8
    assert images.class_names == [str(i) for i in range(10)]
    assert np.bincount(images.labels).min() > 170  # every digit is present
    assert images.images.max() == 255 and images.images.min() == 0


def test_image_folder_reads_classes_in_sorted_order(tmp_path: Path):
    root = make_image_folder(tmp_path / "d", per_class=4)
    images = data.load_image_folder(root, 8, 10)
    assert images.class_names == ["blue", "green", "red"]
    assert images.images.shape == (12, 8, 10, 3)
    assert np.bincount(images.labels).tolist() == [4, 4, 4]
    assert images.skipped == {"non_image": 0, "unreadable": 0}


def test_non_image_and_unreadable_files_are_skipped_and_counted(tmp_path: Path):
    root = make_image_folder(tmp_path / "d", per_class=3)
    (root / "red" / "notes.txt").write_text("not an image")
    (root / "red" / "broken.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    (root / "green" / ".DS_Store").write_bytes(b"\0")  # hidden files are not data at all
    images = data.load_image_folder(root, 8, 8)
    assert len(images.labels) == 9
    assert images.skipped == {"non_image": 1, "unreadable": 1}


def test_missing_folder(tmp_path: Path):
    with pytest.raises(UserInputError, match="does not exist"):
        data.load_image_folder(tmp_path / "nope", 8, 8)


def test_folder_without_class_folders(tmp_path: Path):
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(UserInputError, match="no class folders"):
        data.load_image_folder(tmp_path, 8, 8)


def test_one_class_is_not_a_classifier(tmp_path: Path):
    make_image_folder(tmp_path, per_class=2, classes={"only": (1, 2, 3)})
    with pytest.raises(UserInputError, match="only one class folder \\('only'\\)"):
        data.load_image_folder(tmp_path, 8, 8)


def test_empty_class_is_named(tmp_path: Path):
    root = make_image_folder(tmp_path / "d", per_class=2)
    (root / "zebra").mkdir()
    (root / "zebra" / "readme.md").write_text("x")
    with pytest.raises(UserInputError, match="class 'zebra' has no .jpg/.png images"):
        data.load_image_folder(root, 8, 8)


def test_nothing_readable_left(tmp_path: Path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.png").write_bytes(b"garbage")
    with pytest.raises(UserInputError, match=r"class 'a' has no readable image \(1 unreadable: a/x.png\)"):
        data.load_image_folder(tmp_path, 8, 8)


def test_split_is_seeded_and_stratified():
    labels = np.repeat(np.arange(4), 25)
    train, val = data.stratified_split(labels, 0.2, seed=1)
    again = data.stratified_split(labels, 0.2, seed=1)
    assert np.array_equal(train, again[0]) and np.array_equal(val, again[1])
    assert np.bincount(labels[val]).tolist() == [5, 5, 5, 5]
    assert not set(train) & set(val)


def test_split_too_small_names_the_flag():
    with pytest.raises(UserInputError, match="--val-fraction"):
        data.stratified_split(np.array([0, 0, 1, 1, 2, 2]), 0.2, seed=0)


def test_preprocessing_mean_std_and_channel_order():
    pixel = np.array([[[[255, 0, 127.5]]]], dtype=np.float32).astype(np.uint8)
    rgb = data.Preprocessing(1, 1, "RGB", (127.5,) * 3, (127.5,) * 3)
    bgr = data.Preprocessing(1, 1, "BGR", (0.0,) * 3, (255.0,) * 3)
    assert np.allclose(rgb.apply(pixel)[0, 0, 0], [1.0, -1.0, -0.0039], atol=1e-3)
    assert np.allclose(bgr.apply(pixel)[0, 0, 0], [127 / 255, 0.0, 1.0], atol=1e-6)
    assert data.Preprocessing.from_dict(rgb.to_dict()) == rgb


def test_fingerprint_changes_with_content(tmp_path: Path):
    root = make_image_folder(tmp_path / "d", per_class=2)
    before = data.fingerprint(str(root))
    assert data.fingerprint(str(root)) == before
    (root / "red" / "0.png").write_bytes((root / "blue" / "0.png").read_bytes())
    assert data.fingerprint(str(root)) != before
