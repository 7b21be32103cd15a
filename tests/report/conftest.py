"""A real tiny build (every precision, 1 and 2 threads) whose report.json the report tests read."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.build import build
from pipeline.config import load_config
from pipeline.report import schema

FAST = {"qat_epochs": 1, "calibration_images": 12, "warmup": 1, "runs": 5, "threads": [1, 2], "val_fraction": 0.25,
        "formats": ["tflite"]}  # the report's logic is format-blind; ncnn and ONNX: tests/test_build_formats.py


@pytest.fixture(scope="session")
def tiny_run(trained_model_file, image_folder, tmp_path_factory) -> tuple[schema.Report, Path]:
    out = tmp_path_factory.mktemp("report-run")
    config = load_config(overrides={"models": [str(trained_model_file)], "data": str(image_folder), "out": out, **FAST})
    return build(config, command="deploy build --model tiny.keras"), out


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    """A private copy of the tiny run's report files, free to rewrite."""
    _, out = tiny_run
    copy = tmp_path / "run"
    copy.mkdir()
    for name in ("report.json", "report.md", "report.html"):
        shutil.copy(out / name, copy / name)
    return copy
