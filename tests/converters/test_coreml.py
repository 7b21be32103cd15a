"""Keras -> Core ML with coremltools on Linux, checked from the saved spec (prediction needs macOS)."""
import json

import pytest

from converters import coreml
from pipeline.errors import ToolError

LABELS = ["blue", "green", "red"]  # the class folders of tests/conftest.py's image_folder, sorted


@pytest.fixture(scope="module")
def package(app_run):
    """The package `deploy build --coreml` converted from the tiny model (no second conversion)."""
    return app_run / "artifacts" / "tiny" / "tiny_coreml.mlpackage"


@pytest.mark.slow
def test_converted_spec_has_the_apps_input_outputs_and_labels(package):
    d = coreml.check(package, LABELS, [16, 16, 3])
    assert d["type"] == "mlProgram"
    assert d["inputs"] == [{"name": "input", "shape": [1, 16, 16, 3], "dtype": "FLOAT32"}]
    assert d["program_inputs"] == ["input"]
    assert [o["name"] for o in d["outputs"]] == ["classLabel", "classLabel_probs"]
    assert d["labels"] == LABELS


@pytest.mark.slow
@pytest.mark.parametrize("labels, shape, message", [
    (["blue", "green"], [16, 16, 3], "class labels ['blue', 'green', 'red'] (expected ['blue', 'green'])"),
    (LABELS, [32, 32, 3], "inputs"),
])
def test_check_fails_on_a_mismatch(package, labels, shape, message):
    with pytest.raises(ToolError, match="Core ML model check failed") as error:
        coreml.check(package, labels, shape)
    assert message in str(error.value)


@pytest.mark.slow  # importing coremltools imports TensorFlow: seconds
def test_unreadable_package_is_a_tool_error(tmp_path):
    (tmp_path / "x.mlpackage").mkdir()
    with pytest.raises(ToolError, match="cannot read the Core ML model"):
        coreml.describe(tmp_path / "x.mlpackage")


@pytest.mark.slow
def test_build_with_coreml_publishes_a_checked_package(app_run):
    folder = app_run / "artifacts" / "tiny"
    assert (folder / "tiny_coreml.mlpackage" / "Manifest.json").is_file()
    recipe = json.loads((folder / "tiny_coreml.json").read_text())
    assert recipe["spec_check"]["labels"] == ["blue", "green", "red"] and recipe["precision"] == "fp16"
    assert recipe["tools"]["coremltools"] == "9.0"
    # The report's artifacts stay the TFLite ones (the schema has no Core ML format).
    report = json.loads((app_run / "report.json").read_text())
    assert all(a["format"] == "tflite" for a in report["artifacts"])
