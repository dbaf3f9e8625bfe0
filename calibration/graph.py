"""What the quantizers need to know about an ONNX graph, found from the graph alone.

The *conditioning path* is every node whose value does not depend on the sample input
(x_t, or z for a generator): the timestep embedding (t * freqs -> sin/cos -> MLP), the label
embedding and the per-block projections of their sum. Quantizing it wrecks sampling (the
network can no longer tell nearby timesteps apart), so no quantizer touches it. Finding it by
data flow rather than by layer names keeps calibration free of per-family code.
"""
from __future__ import annotations

import onnx

QUANTIZED_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")  # shared InstanceNorm inits break the rest


def sample_input(spec) -> str:
    """The role input that is neither the time nor the label (x_t, z, ...)."""
    meta = spec.meta or {}
    cond = {meta.get("time_input"), meta.get("label_input")}
    return next(t.name for t in spec.inputs if t.name not in cond)


def depends_on(model: onnx.ModelProto, source: str) -> set[str]:
    """Names of the nodes whose outputs depend (transitively) on graph input ``source``."""
    live = {source}
    hit: set[str] = set()
    for node in model.graph.node:  # ONNX graphs are topologically sorted
        if any(i in live for i in node.input):
            hit.add(node.name)
            live.update(o for o in node.output if o)
    return hit


def conditioning_nodes(model: onnx.ModelProto, spec) -> list[str]:
    """Nodes that do not depend on the sample input: never quantized."""
    on_x = depends_on(model, sample_input(spec))
    return [n.name for n in model.graph.node if n.name not in on_x]


def quantizable_nodes(model: onnx.ModelProto, spec) -> list[str]:
    """Conv/ConvTranspose/MatMul/Gemm nodes on the sample path, in graph order."""
    cond = set(conditioning_nodes(model, spec))
    return [n.name for n in model.graph.node if n.op_type in QUANTIZED_OPS and n.name not in cond]


def float_tensors(model: onnx.ModelProto) -> list[str]:
    """Every float32 activation (graph inputs and node outputs), in graph order."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type
             for v in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)}
    inits = {i.name for i in model.graph.initializer}
    names = [i.name for i in model.graph.input] + [o for n in model.graph.node for o in n.output if o]
    return [n for n in dict.fromkeys(names)
            if n not in inits and types.get(n) == onnx.TensorProto.FLOAT]
