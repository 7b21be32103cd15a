"""A tiny finished run (report.json + artifacts) and the compiled Kotlin core tests, built once per session."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KOTLIN_CORE = ROOT / "android-demo" / "core" / "src"

FAST = {"qat_epochs": 1, "calibration_images": 12, "warmup": 1, "runs": 3, "threads": [1], "val_fraction": 0.25}


@pytest.fixture(scope="session")
def app_run(trained_model_file, image_folder, tmp_path_factory) -> Path:
    """fp32 and a fully-int8 artifact with int8 input/output: both code paths the apps have."""
    from pipeline.build import build
    from pipeline.config import load_config

    out = tmp_path_factory.mktemp("app-run")
    config = load_config(overrides={
        "models": [str(trained_model_file)], "data": str(image_folder), "out": out,
        "precisions": ["fp32", "int8-ptq"], "io": "int8", **FAST,
    })
    build(config)
    return out


@pytest.fixture(scope="session")
def kotlin_core_jar(tmp_path_factory) -> Path:
    """android-demo/core (main + test sources) compiled by kotlinc into one runnable jar."""
    kotlinc = shutil.which("kotlinc")
    if kotlinc is None:
        pytest.fail("kotlinc not found: run ./scripts/setup-kotlin.sh (make test does)")
    jar = tmp_path_factory.mktemp("kotlin") / "core-tests.jar"
    proc = subprocess.run(
        [kotlinc, str(KOTLIN_CORE / "main" / "kotlin"), str(KOTLIN_CORE / "test" / "kotlin"), "-include-runtime", "-d", str(jar)],
        capture_output=True, text=True, timeout=600,
    )
    errors = [line for line in proc.stderr.splitlines() if ": error:" in line]
    assert proc.returncode == 0 and jar.is_file(), "kotlinc failed:\n" + "\n".join(errors or proc.stderr.splitlines()[-20:])
    return jar


def run_kotlin_tests(jar: Path, golden_dir: Path, record_out: Path | None = None) -> subprocess.CompletedProcess:
    args = ["java", "-cp", str(jar), "com.mobiledeploy.core.TestMainKt", str(golden_dir)]
    if record_out is not None:
        args.append(str(record_out))
    return subprocess.run(args, capture_output=True, text=True, timeout=300)
