"""onnx_import / onnx_export: the ONNX graph every ncnn artifact and the ONNX artifact start from.

onnx_import takes the user's .onnx as it is (checked, input fixed to a static NCHW shape);
onnx_export converts the float Keras model with tf2onnx. Both leave model.onnx with one
(1, 3, H, W) input, so later stages never ask where the graph came from.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from converters import onnx as onnx_converter
from pipeline.data import Preprocessing
from pipeline.errors import UserInputError
from pipeline.runtimes import onnxruntime as ort_runtime
from pipeline.stages.artifact import write_recipe
from pipeline.stages.base import Stage, StageConfig, StageOutput
from pipeline.stages.model import TF_TOOLS, load_float_model

ONNX_TOOLS = ("onnx", "onnxruntime", "numpy")
MODEL_FILE = "model.onnx"


class OnnxImportConfig(StageConfig):
    path: str
    input_shape: list[int] | None


class OnnxImportStage(Stage):
    name = "onnx_import"
    tools = ONNX_TOOLS
    Config = OnnxImportConfig

    def run(self, config: OnnxImportConfig, inputs, workdir: Path) -> dict:
        source = Path(config.path)
        proto = onnx_converter.load(source)
        sig = onnx_converter.signature(proto, source, config.input_shape)
        fixed = onnx_converter.with_static_shape(proto, sig)
        onnx_converter.save(fixed, workdir / MODEL_FILE)
        try:
            ort_runtime.session(workdir / MODEL_FILE)
        except Exception as e:  # onnxruntime's own exception types
            raise UserInputError(f"{source}: onnxruntime cannot load it ({str(e).splitlines()[0][:300]})") from e
        classes = onnx_converter.num_classes(fixed)
        if classes < 2:
            raise UserInputError(f"{source}: output '{sig.output_name}' is not (batch, classes); export the classifier's logits or softmax")
        _, channels, height, width = sig.input_shape
        return {
            "format": "onnx", "model_file": MODEL_FILE, "source": str(source),
            "input_shape": [height, width, channels], "num_classes": classes,
            "params": onnx_converter.count_params(fixed), "macs": onnx_converter.count_macs(fixed),
        }


class OnnxExportConfig(StageConfig):
    model_name: str
    preprocessing: dict


class OnnxExportStage(Stage):
    """The ONNX artifact (fp32): tf2onnx for a Keras model, the checked copy for an ONNX model."""

    name = "onnx_export"
    tools = (*TF_TOOLS, "tf2onnx", *ONNX_TOOLS)
    Config = OnnxExportConfig

    def run(self, config: OnnxExportConfig, inputs: dict[str, StageOutput], workdir: Path) -> dict:
        model = inputs["model"]
        stem = f"{config.model_name}_fp32"
        target = workdir / f"{stem}.onnx"
        if is_onnx_model(model):
            shutil.copyfile(model.path(model.result["model_file"]), target)
        else:
            onnx_converter.from_keras(load_float_model(model), target)
        return write_recipe(
            workdir, stem, [target], model_name=config.model_name, fmt="onnx", precision="fp32",
            io={"input": "float32", "output": "float32"}, calibration_images=0,
            preprocessing={**Preprocessing.from_dict(config.preprocessing).to_dict(), "layout": "NCHW"},
            data=inputs["data"], source=model, tools=self.tools,
        )


def is_onnx_model(output: StageOutput) -> bool:
    return output.result.get("format") == "onnx"
