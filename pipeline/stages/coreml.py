"""coreml: the float model as a Core ML .mlpackage for the iOS app, checked from its saved spec.

Optional (`--coreml`): it adds a TensorFlow -> Core ML conversion per model that only iOS uses.
"""
from __future__ import annotations

import json
from pathlib import Path

from converters import coreml
from pipeline.stages.base import Stage, StageConfig, StageOutput
from pipeline.stages.model import TF_TOOLS, load_float_model
from pipeline.versions import tool_versions


class CoreMLConfig(StageConfig):
    model_name: str
    preprocessing: dict


class CoreMLStage(Stage):
    name = "coreml"
    tools = (*TF_TOOLS, "coremltools")
    Config = CoreMLConfig

    def run(self, config: CoreMLConfig, inputs: dict[str, StageOutput], workdir: Path) -> dict:
        model = load_float_model(inputs["model"])
        labels = inputs["data"].result["class_names"]
        stem = f"{config.model_name}_coreml"
        package = coreml.convert(model, labels, workdir / f"{stem}.mlpackage")
        input_shape = [int(d) for d in model.inputs[0].shape[1:]]
        recipe = {
            "id": stem,
            "model": config.model_name,
            "format": "coreml",
            "precision": "fp16",
            "input_name": coreml.INPUT_NAME,
            "preprocessing": config.preprocessing,
            "labels": labels,
            "spec_check": coreml.check(package, labels, input_shape),
            "source_model_key": inputs["model"].key,
            "tools": tool_versions(self.tools),
        }
        (workdir / f"{stem}.json").write_text(json.dumps(recipe, indent=2) + "\n")
        return {"file": package.name, "recipe": f"{stem}.json", **recipe}
