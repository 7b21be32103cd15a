"""Keras -> Core ML (.mlpackage, an ML Program) for the iOS demo app, and a check of what was written.

coremltools converts on Linux, but compiling and running a Core ML model needs macOS, so the
check here reads the saved spec back: the input (name, shape, float32), the classifier outputs
and the class labels stored in the program. Whether Core ML's predictions match LiteRT's can
only be seen on a Mac or an iPhone (ios-demo's tests do that on the golden vectors).

The input is the same preprocessed float tensor the TFLite artifact takes, (1, H, W, 3), so
the app preprocesses once, with one implementation, for both runtimes. Weights and compute are
float16 (the ML Program default), converted from the float Keras model: Core ML has no path
from the int8 TFLite artifacts, so its accuracy is the float model's, within fp16 rounding.
"""
from __future__ import annotations

import logging
from pathlib import Path

from pipeline.errors import ToolError

INPUT_NAME = "input"
LABEL_OUTPUT = "classLabel"
PROBABILITIES_OUTPUT = "classLabel_probs"
MINIMUM_IOS = "iOS15"


def _coremltools():
    # Its import warns about the scikit-learn version and the missing macOS-only runtime
    # (libcoremlpython); neither matters for converting, so keep the log clean.
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    from pipeline.tf_import import tensorflow

    tensorflow()  # coremltools must see the tf_keras setup (TF_USE_LEGACY_KERAS) before it imports TF
    import coremltools

    return coremltools


def convert(model, labels: list[str], path: Path) -> Path:
    """Convert an in-memory tf_keras classifier (softmax output) to an .mlpackage at `path`."""
    ct = _coremltools()
    shape = (1, *(int(d) for d in model.inputs[0].shape[1:]))
    try:
        mlmodel = ct.convert(
            model, source="tensorflow", inputs=[ct.TensorType(shape=shape)],
            classifier_config=ct.ClassifierConfig(list(labels)), convert_to="mlprogram",
            minimum_deployment_target=getattr(ct.target, MINIMUM_IOS),
        )
    except Exception as e:  # coremltools raises many types; all mean "this tool failed"
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ToolError(f"Core ML conversion of {model.name} failed: {first}") from e
    spec = mlmodel.get_spec()
    old_name = spec.description.input[0].name
    if old_name != INPUT_NAME:  # Keras names its input after the layer; the app wants one fixed name
        ct.utils.rename_feature(spec, old_name, INPUT_NAME)
        mlmodel = ct.models.MLModel(spec, weights_dir=mlmodel.weights_dir, skip_model_load=True)
    mlmodel.short_description = f"{model.name}: image classifier converted by mobile-deploy"
    mlmodel.save(str(path))
    return path


def _program_labels(spec) -> list[str]:
    """The class labels stored in the ML Program's `classify` op."""
    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            for op in block.operations:
                if op.type == "classify":
                    values = op.inputs["classes"].arguments[0].value.immediateValue.list.values
                    return [v.immediateValue.tensor.strings.values[0] for v in values]
    return []


def describe(path: Path) -> dict:
    """What the saved .mlpackage declares: inputs, outputs, labels, spec version."""
    ct = _coremltools()
    try:
        spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    except Exception as e:
        raise ToolError(f"{path}: cannot read the Core ML model ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from e
    dtypes = {v: k for k, v in ct.proto.FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.items()}
    inputs = [
        {"name": i.name, "shape": [int(d) for d in i.type.multiArrayType.shape],
         "dtype": dtypes.get(i.type.multiArrayType.dataType, "?")}
        for i in spec.description.input
    ]
    outputs = [{"name": o.name, "type": o.type.WhichOneof("Type")} for o in spec.description.output]
    program_inputs = [i.name for f in spec.mlProgram.functions.values() for i in f.inputs]
    return {
        "type": spec.WhichOneof("Type"), "spec_version": int(spec.specificationVersion),
        "inputs": inputs, "program_inputs": program_inputs, "outputs": outputs, "labels": _program_labels(spec),
        "predicted_feature": spec.description.predictedFeatureName,
        "probabilities_output": spec.description.predictedProbabilitiesName,
    }


def check(path: Path, labels: list[str], input_shape: list[int]) -> dict:
    """Raise ToolError unless the saved model is the classifier the app expects; return its description."""
    d = describe(path)
    expected_input = [{"name": INPUT_NAME, "shape": [1, *input_shape], "dtype": "FLOAT32"}]
    problems = []
    if d["type"] != "mlProgram":
        problems.append(f"model type {d['type']} (expected mlProgram)")
    if d["inputs"] != expected_input:
        problems.append(f"inputs {d['inputs']} (expected {expected_input})")
    if d["program_inputs"] != [INPUT_NAME]:
        problems.append(f"program inputs {d['program_inputs']} (expected ['{INPUT_NAME}'])")
    if d["outputs"] != [{"name": LABEL_OUTPUT, "type": "stringType"}, {"name": PROBABILITIES_OUTPUT, "type": "dictionaryType"}]:
        problems.append(f"outputs {d['outputs']}")
    if (d["predicted_feature"], d["probabilities_output"]) != (LABEL_OUTPUT, PROBABILITIES_OUTPUT):
        problems.append(f"classifier outputs {d['predicted_feature']!r}/{d['probabilities_output']!r}")
    if d["labels"] != list(labels):
        problems.append(f"class labels {d['labels']} (expected {list(labels)})")
    if problems:
        raise ToolError(f"{path}: Core ML model check failed: {'; '.join(problems)}")
    return d
