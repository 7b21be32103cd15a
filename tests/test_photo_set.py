"""scripts/make_photo_set.py: folder layout, determinism, and that it reads only installed packages' files."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import load_script


@pytest.fixture(scope="module")
def mps():
    return load_script("make_photo_set")


def _pixels(folder: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(folder)): np.asarray(Image.open(p)) for p in sorted(folder.rglob("*.*"))}


def test_layout_counts_and_sizes(mps, tmp_path):
    out = tmp_path / "set"
    assert mps.main([str(out), "--classes", "cat,temple,brick", "--per-class", "3", "--size", "24"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["brick", "cat", "temple"]
    for cls in ("brick", "cat", "temple"):
        files = sorted((out / cls).iterdir())
        assert [f.suffix for f in files] == [".png"] * 3
        for f in files:
            img = Image.open(f)
            assert img.size == (24, 24) and img.mode == "RGB"
    # nothing but the set is left beside it (no temporary folder)
    assert [p.name for p in tmp_path.iterdir()] == ["set"]


def test_deterministic_for_a_seed_and_per_class_streams(mps, tmp_path):
    a, b, c, d = (tmp_path / n for n in "abcd")
    mps.write_set(a, ["cat", "coffee"], 2, 16, "jpg", seed=3)
    mps.write_set(b, ["cat", "coffee"], 2, 16, "jpg", seed=3)
    mps.write_set(c, ["cat", "coffee"], 2, 16, "jpg", seed=4)
    mps.write_set(d, ["coffee", "cat", "rocket"], 2, 16, "jpg", seed=3)
    pa, pb, pc, pd = map(_pixels, (a, b, c, d))
    assert pa.keys() == pb.keys() and all(np.array_equal(pa[k], pb[k]) for k in pa)
    assert any(not np.array_equal(pa[k], pc[k]) for k in pa)
    # adding a class leaves the other classes' images unchanged
    assert all(np.array_equal(pa[k], pd[k]) for k in pa)
    # crops of one photo differ from each other
    assert not np.array_equal(pa["cat/cat_00000.jpg"], pa["cat/cat_00001.jpg"])


def test_reads_only_files_inside_installed_packages(mps, tmp_path, monkeypatch):
    opened = []
    real_open = Image.open

    def recording_open(fp, *a, **kw):
        opened.append(Path(fp).resolve())
        return real_open(fp, *a, **kw)

    monkeypatch.setattr(mps.Image, "open", recording_open)
    mps.write_set(tmp_path / "s", list(mps.SOURCES), 1, 16, "png", seed=0)
    roots = {mps.package_dir(pkg).resolve() for srcs in mps.SOURCES.values() for pkg, _ in srcs}
    assert len(opened) == sum(len(s) for s in mps.SOURCES.values())
    for path in opened:
        assert any(root in path.parents for root in roots), path
        assert any(part in ("site-packages", "dist-packages") for part in path.parts), path


def test_rejects_unknown_class_and_existing_out(mps, tmp_path, capsys):
    with pytest.raises(SystemExit):
        mps.main([str(tmp_path / "x"), "--classes", "cat,unicorn"])
    assert "unicorn" in capsys.readouterr().err
    (tmp_path / "y").mkdir()
    with pytest.raises(SystemExit, match="already exists"):
        mps.write_set(tmp_path / "y", ["cat", "coffee"], 1, 16, "png", seed=0)


def test_faces_textures_kind_has_distinct_face_photographs(mps, tmp_path):
    out = tmp_path / "ft"
    assert mps.main([str(out), "--kind", "faces-textures", "--per-class", "120", "--size", "32"]) == 0
    counts = {p.name: len(list(p.iterdir())) for p in out.iterdir()}
    assert counts == {"face": 100, "nonface": 100, "brick": 120, "grass": 120, "gravel": 120}  # 100 photographs each, no more
    faces = _pixels(out / "face")
    assert len({a.tobytes() for a in faces.values()}) == 100  # each its own photograph
    assert Image.open(next((out / "nonface").iterdir())).size == (32, 32)
