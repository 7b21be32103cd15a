"""Where a TFLite artifact's time goes on a target: each of its ops timed alone (`--profile-ops`).

LiteRT's Python interpreter has no op profiler (benchmark_model's --enable_op_profiling is a C++
tool, not on a board's pip), so each op is cut out of the artifact's own flatbuffer as a model of
that op alone, with its real weights, quantization and fused activation; a constant input that a
DEQUANTIZE makes (fp16 weights) keeps that op, every other input becomes a model input fed random
data. All of them and the whole artifact are timed on the target in one process, in interleaved
rounds (table_runner.py), through XNNPACK as the artifact runs. What an op alone cannot show: the
invoke's fixed cost, which it pays again, and what XNNPACK keeps in cache between ops; the whole
artifact's time beside the ops' sum says how far that goes.

Written here: no maintained library cuts a TFLite model into one-op models. Imports only
ai_edge_litert's flatbuffer tools, never TensorFlow.
"""
from __future__ import annotations

import copy
import statistics


def layer_name(tensor_name: str, op: str) -> str:
    """The Keras layer an op came from, read from its output tensor's name: the converter names it
    'model/block_1_expand_relu/Relu6;model/block_1_expand_BN/...;model/block_1_expand/Conv2D', the
    op's own layer last. Without a layer path (the output's signature name): the op's type."""
    last = tensor_name.split(";")[-1].split("/")
    return last[-2] if len(last) >= 3 else op.lower()


def single_ops(data: bytes) -> list[dict]:
    """[{"index", "op", "layer", "model": one-op TFLite bytes}] in execution order; a DEQUANTIZE of a
    constant is no entry of its own (it goes with the op that reads it)."""
    from ai_edge_litert.tools import flatbuffer_utils as fb

    model = fb.read_model_from_bytearray(bytearray(data))
    graph = model.subgraphs[0]
    constant = {t for t, tensor in enumerate(graph.tensors) if _has_data(model, tensor)}
    producers = {out: op for op in graph.operators for out in op.outputs}

    def weights_dequantize(op) -> bool:
        return fb.opcode_to_name(model, op.opcodeIndex) == "DEQUANTIZE" and op.inputs[0] in constant

    result = []
    for index, op in enumerate(graph.operators):
        if weights_dequantize(op):
            continue
        setup = [producers[t] for t in op.inputs if t in producers and weights_dequantize(producers[t])]
        name = fb.opcode_to_name(model, op.opcodeIndex) or "CUSTOM"
        tensor_name = graph.tensors[op.outputs[0]].name
        tensor_name = tensor_name.decode() if isinstance(tensor_name, bytes) else str(tensor_name)
        result.append({"index": index, "op": name, "layer": layer_name(tensor_name, name),
                       "model": _alone(model, graph, [*setup, op], constant)})
    return result


def _has_data(model, tensor) -> bool:
    buffer = model.buffers[tensor.buffer] if tensor.buffer else None
    return buffer is not None and buffer.data is not None and len(buffer.data) > 0


def _alone(model, graph, ops: list, constant: set[int]) -> bytes:
    """A model of `ops` (the last one's outputs are its outputs) holding only the tensors and
    buffers they use."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fb

    used = sorted({t for op in ops for t in (*op.inputs, *op.outputs) if t >= 0})
    remap = {t: i for i, t in enumerate(used)}
    produced = {t for op in ops for t in op.outputs}
    alone = schema.ModelT()
    alone.version, alone.operatorCodes, alone.description = model.version, model.operatorCodes, "one op"
    alone.buffers = [schema.BufferT()]  # buffer 0: the empty one every tensor without data points to
    tensors = []
    for t in used:
        tensor = copy.copy(graph.tensors[t])
        if t in constant:
            alone.buffers.append(model.buffers[tensor.buffer])
            tensor.buffer = len(alone.buffers) - 1
        else:
            tensor.buffer = 0
        tensors.append(tensor)
    sub = schema.SubGraphT()
    sub.tensors = tensors
    sub.inputs = [remap[t] for t in used if t not in produced and t not in constant]
    sub.outputs = [remap[t] for t in ops[-1].outputs]
    sub.operators = []
    for op in ops:
        cut = copy.copy(op)
        cut.inputs = [remap[t] if t >= 0 else -1 for t in op.inputs]
        cut.outputs = [remap[t] for t in op.outputs]
        sub.operators.append(cut)
    alone.subgraphs = [sub]
    return bytes(fb.convert_object_to_bytearray(alone))


def models(ops: list[dict], whole: bytes) -> dict[str, bytes]:
    """What table_runner.py times: the whole artifact and each op alone."""
    return {"whole": whole, **{f"op{entry['index']}": entry["model"] for entry in ops}}


def summarize(ops: list[dict], result: dict) -> dict:
    """The profile from table_runner's result: each op's median over the rounds, the whole artifact's."""
    rounds = result["rounds_ms"]
    return {"rounds": len(rounds["whole"]), "whole_ms": statistics.median(rounds["whole"]),
            "ops": [{"index": e["index"], "op": e["op"], "layer": e["layer"],
                     "ms": round(statistics.median(rounds[f"op{e['index']}"]), 6)} for e in ops]}
