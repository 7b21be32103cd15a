"""The Android app's plain-Kotlin core, compiled with kotlinc, reproduces the pipeline bit for bit.

The pipeline writes golden vectors for real artifacts (pipeline/golden.py runs LiteRT on them);
the Kotlin tests must reproduce the preprocessed tensors, the int8 input, the scores and the
top-3 exactly, and device_runner's latency summary to the last bit.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_kotlin_tests


def _counts(stdout):
    match = re.search(r"^(\d+) passed, (\d+) failed$", stdout, re.MULTILINE)
    assert match, stdout
    return int(match[1]), int(match[2])


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "int8-ptq"])
def test_kotlin_core_reproduces_the_golden_vectors(golden_dirs, kotlin_core_jar, precision):
    folder = golden_dirs[precision]
    index = json.loads((folder / "golden.json").read_text())
    assert len(index["cases"]) == 4 and all(len(c["top_k"]) == 3 for c in index["cases"])
    if precision == "int8-ptq":  # --io int8: the quantized input and raw int8 output are checked too
        assert all("int8" in c["input"] and c["output"]["dtype"] == "int8" for c in index["cases"])
    proc = run_kotlin_tests(kotlin_core_jar, folder)
    passed, failed = _counts(proc.stdout)
    assert (proc.returncode, failed) == (0, 0), proc.stdout + proc.stderr
    golden_tests = [line for line in proc.stdout.splitlines() if line.startswith("PASS golden")]
    per_case = 3 if precision == "int8-ptq" else 2
    assert len(golden_tests) == 4 * per_case + 1


@pytest.mark.slow
@pytest.mark.parametrize("corrupt", ["input", "scores", "latency"])
def test_kotlin_core_tests_fail_on_any_mismatch(golden_dirs, kotlin_core_jar, tmp_path, corrupt):
    folder = shutil.copytree(golden_dirs["fp32"], tmp_path / "golden")
    index = json.loads((folder / "golden.json").read_text())
    case = index["cases"][0]
    if corrupt == "input":  # flip the lowest mantissa bit of one float: one ulp must be caught
        path = folder / case["input"]["float32"]
        data = bytearray(path.read_bytes())
        data[40] ^= 1
        path.write_bytes(bytes(data))
    elif corrupt == "scores":
        case["top_k"][0]["score"] = float(np.nextafter(np.float32(case["top_k"][0]["score"]), np.float32(2)))
    else:
        index["latency"]["summary"]["p90"] += 1e-6
    (folder / "golden.json").write_text(json.dumps(index))
    proc = run_kotlin_tests(kotlin_core_jar, folder)
    assert proc.returncode == 1
    passed, failed = _counts(proc.stdout)
    assert failed == 1, proc.stdout


@pytest.mark.slow
def test_kotlin_core_reproduces_a_grayscale_models_golden_vectors(kotlin_core_jar, tmp_path):
    """A 1-channel model: the Kotlin core turns RGB into Pillow's gray, resizes and normalizes bit for bit."""
    from converters import tflite
    from pipeline import golden
    from pipeline.data import Preprocessing
    from pipeline.tf_import import keras

    k = keras()
    inputs = k.Input((12, 10, 1))
    x = k.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = k.layers.GlobalAveragePooling2D()(x)
    model = k.Model(inputs, k.layers.Dense(3, activation="softmax")(x))
    artifact = tflite.write(tflite.convert(model, "fp32"), tmp_path / "gray_fp32.tflite")
    prep = Preprocessing(12, 10, "RGB", (0.0,), (255.0,), channels=1)
    metadata = tmp_path / "gray_fp32.json"
    metadata.write_text(json.dumps({"id": "gray_fp32", "labels": ["a", "b", "c"], "preprocessing": prep.to_dict(),
                                    "io": {"input": "float32", "output": "float32"}}))
    folder = tmp_path / "golden"
    golden.write(artifact, metadata, folder)
    index = json.loads((folder / "golden.json").read_text())
    assert all(Path(folder / c["input"]["float32"]).stat().st_size == 12 * 10 * 4 for c in index["cases"])  # one channel
    proc = run_kotlin_tests(kotlin_core_jar, folder)
    passed, failed = _counts(proc.stdout)
    assert (proc.returncode, failed) == (0, 0), proc.stdout + proc.stderr
    assert len([line for line in proc.stdout.splitlines() if line.startswith("PASS golden")]) == 4 * 2 + 1
