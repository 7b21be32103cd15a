"""Where an artifact's logits are: the tensor feeding its final softmax, made readable on any target.

A trained classifier's softmax saturates (0 and 1 to 1e-15), so comparing softmax outputs
between a target and the host hides any kernel difference; its input, the logits, does not.

- TFLite: the interpreter frees intermediate tensors, and LiteRT's `experimental_preserve_all_tensors`
  turns the default delegate (XNNPACK) off, which would compare other kernels than the target runs.
  So a copy of the flatbuffer lists the softmax's input as one more subgraph output; the ops,
  weights and every original output are unchanged (tests check the original outputs are
  bit-identical), and the copy is what the comparison runs, never what is timed.
- ncnn: the extractor reads any blob by name: the Softmax layer's input blob in the .param.
- ONNX: a copy whose graph also outputs the Softmax node's input.
- MNN: the runner reads the input of the final Softmax op, named by the probe, in MNN's per-op
  callback (`runSessionWithCallBackInfo`); the artifact itself is what runs.
A model without a final softmax gets no probe: its outputs are compared as they are.
Imports only ai_edge_litert's flatbuffer tools and onnx, never TensorFlow.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ToolError


@dataclass(frozen=True)
class Probe:
    """What the comparison runs: `path` (the artifact, or a copy exposing the logits) and the name of
    the logits tensor or blob (None: no final softmax, the outputs are the logits)."""
    path: Path
    logits: str | None

    def runner_args(self, model_path: Path, probe_path: Path | None = None) -> list[str]:
        """device_runner flags; `probe_path` is where the copy sits on the target (default: here)."""
        if self.logits is None:
            return []
        args = ["--logits", self.logits]
        if Path(self.path) != Path(model_path):
            args += ["--probe", str(probe_path or self.path)]
        return args


def make_probe(model_path: Path, folder: Path) -> Probe:
    """The probe for an artifact; copies are written into `folder`."""
    model_path = Path(model_path)
    if model_path.suffix == ".tflite":
        return _tflite(model_path, folder)
    if model_path.suffix == ".param":
        return Probe(model_path, ncnn_softmax_input(model_path))
    if model_path.suffix == ".onnx":
        return _onnx(model_path, folder)
    if model_path.suffix == ".mnn":
        return Probe(model_path, mnn_final_softmax(model_path))
    raise ToolError(f"{model_path}: no logits probe for this artifact type")


def _tflite(model_path: Path, folder: Path) -> Probe:
    from ai_edge_litert.tools import flatbuffer_utils as fb

    model = fb.read_model(str(model_path))
    graph = model.subgraphs[0]
    producers = {out: op for op in graph.operators for out in op.outputs}
    softmax = None
    for output in graph.outputs:  # the softmax writing an output, directly or through a DEQUANTIZE
        op = producers.get(output)
        if op is not None and fb.opcode_to_name(model, op.opcodeIndex) == "DEQUANTIZE":
            op = producers.get(op.inputs[0])
        if op is not None and fb.opcode_to_name(model, op.opcodeIndex) == "SOFTMAX":
            softmax = op
            break
    if softmax is None:
        return Probe(model_path, None)
    logits = int(softmax.inputs[0])
    name = graph.tensors[logits].name
    name = name.decode() if isinstance(name, bytes) else name
    if logits not in list(graph.outputs):
        graph.outputs = [*graph.outputs, logits]
    copy = Path(folder) / f"{model_path.stem}.logits.tflite"
    fb.write_model(model, str(copy))
    return Probe(copy, name)


def ncnn_softmax_input(param_path: Path) -> str | None:
    """The input blob of the Softmax layer that writes the output blob (out0), if there is one."""
    for line in Path(param_path).read_text().splitlines()[2:]:
        parts = line.split()
        if len(parts) < 4 or parts[0] != "Softmax":
            continue
        bottoms, tops = int(parts[2]), int(parts[3])
        if bottoms == 1 and "out0" in parts[4 + bottoms: 4 + bottoms + tops]:
            return parts[4]
    return None


def mnn_final_softmax(model_path: Path) -> str | None:
    """The name of the Softmax op an MNN model ends with (its input is the logits), if it ends so."""
    from converters.mnn import op_types

    ops = op_types(model_path)
    return ops[-1][1] if ops and ops[-1][0] == "Softmax" else None


def _onnx(model_path: Path, folder: Path) -> Probe:
    import onnx

    model = onnx.load(str(model_path))
    outputs = {o.name for o in model.graph.output}
    softmax = next((n for n in model.graph.node if n.op_type == "Softmax" and set(n.output) & outputs), None)
    if softmax is None:
        return Probe(model_path, None)
    name = softmax.input[0]
    copy = Path(folder) / f"{model_path.stem}.logits.onnx"
    model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    onnx.save(model, str(copy))
    return Probe(copy, name)

