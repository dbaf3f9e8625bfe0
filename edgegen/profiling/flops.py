"""FLOPs and memory traffic per network call, counted from an ONNX graph.

Symbolic dimensions of the graph inputs (the batch) are fixed to a value, ONNX shape
inference gives every tensor's shape, and each node is counted:

* Conv:          2 * N * C_out * prod(out spatial) * (C_in / groups) * prod(kernel)
                 (+ one add per output element for the bias)
* ConvTranspose: 2 * N * C_in * prod(in spatial) * (C_out / groups) * prod(kernel) (+ bias)
* MatMul:        2 * prod(output) * K
* Gemm:          2 * M * N * K (+ M * N for C)
* elementwise / activation ops: one FLOP per output element;
  normalisation and softmax: a few FLOPs per element (NORM_FLOPS_PER_ELEMENT).
Data movement (Reshape, Transpose, Concat, ...) counts no FLOPs.

"macs" FLOPs (Conv/MatMul/Gemm) and "other" FLOPs are reported separately; the
roofline uses the total. ``bytes`` is a no-fusion upper bound on memory traffic:
weights read once plus every node's activation inputs read and outputs written.
"""
from __future__ import annotations

from collections import defaultdict
from math import prod
from pathlib import Path
from typing import Union

import onnx
from onnx import shape_inference

from edgegen.errors import EdgegenError

ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Exp", "Log", "Neg", "Abs", "Relu", "Sigmoid",
               "Tanh", "Erf", "Sin", "Cos", "Max", "Min", "Clip", "LeakyRelu", "Reciprocal", "HardSigmoid",
               "Gelu", "Where", "Mish", "Softplus", "Elu", "Selu"}
NORM_FLOPS_PER_ELEMENT = {"InstanceNormalization": 5, "GroupNormalization": 5, "LayerNormalization": 5,
                          "BatchNormalization": 2, "Softmax": 5, "LogSoftmax": 5, "ReduceMean": 1,
                          "ReduceSum": 1}
DTYPE_BYTES = {onnx.TensorProto.FLOAT: 4, onnx.TensorProto.FLOAT16: 2, onnx.TensorProto.INT64: 8,
               onnx.TensorProto.INT32: 4, onnx.TensorProto.INT8: 1, onnx.TensorProto.UINT8: 1,
               onnx.TensorProto.BOOL: 1, onnx.TensorProto.DOUBLE: 8, onnx.TensorProto.BFLOAT16: 2}


def _fix_batch(model: onnx.ModelProto, batch: int) -> None:
    """Give every symbolic dimension of the graph inputs and outputs the value ``batch``."""
    for vi in list(model.graph.input) + list(model.graph.output):
        for d in vi.type.tensor_type.shape.dim:
            if d.dim_param or not d.HasField("dim_value"):
                d.Clear()
                d.dim_value = batch


def _shapes(model: onnx.ModelProto) -> dict[str, tuple[tuple[int, ...], int]]:
    """name -> (shape, element type) for every tensor whose shape is fully known."""
    out = {}
    for init in model.graph.initializer:
        out[init.name] = (tuple(init.dims), init.data_type)
    for vi in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if vi.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            out[vi.name] = (tuple(d.dim_value for d in dims), vi.type.tensor_type.elem_type)
    return out


def _node_flops(node: onnx.NodeProto, shape, attrs: dict) -> tuple[int, int]:
    """(macs_flops, other_flops) of one node; raises KeyError when a shape is unknown."""
    op = node.op_type
    out = shape(node.output[0])
    if op == "Conv":
        w = shape(node.input[1])
        bias = prod(out) if len(node.input) > 2 and node.input[2] else 0
        return 2 * out[0] * w[0] * prod(out[2:]) * w[1] * prod(w[2:]), bias
    if op == "ConvTranspose":
        x, w = shape(node.input[0]), shape(node.input[1])
        bias = prod(out) if len(node.input) > 2 and node.input[2] else 0
        return 2 * x[0] * x[1] * prod(x[2:]) * w[1] * prod(w[2:]), bias
    if op == "MatMul":
        a = shape(node.input[0])
        return 2 * prod(out) * a[-1], 0
    if op == "Gemm":
        a = shape(node.input[0])
        k = a[0] if attrs.get("transA", 0) else a[-1]
        c = prod(out) if len(node.input) > 2 and node.input[2] else 0
        return 2 * prod(out) * k, c
    if op in ELEMENTWISE:
        return 0, prod(out)
    if op in NORM_FLOPS_PER_ELEMENT:
        return 0, NORM_FLOPS_PER_ELEMENT[op] * prod(shape(node.input[0]))
    return 0, 0


def _tensor_bytes(entry) -> int:
    dims, dtype = entry
    return prod(dims) * DTYPE_BYTES.get(dtype, 4)


def count_flops(model: Union[str, Path, onnx.ModelProto], batch: int = 1) -> dict:
    """Count one call of ``model`` at ``batch``. Returns total/macs/other FLOPs, per-op FLOPs,
    weight and activation bytes, and the ops whose shapes could not be inferred."""
    if batch <= 0:
        raise EdgegenError(f"batch must be positive, got {batch}")
    if not isinstance(model, onnx.ModelProto):
        path = Path(model)
        if not path.is_file():
            raise EdgegenError(f"no ONNX model at {path}")
        model = onnx.load(str(path))
    model = onnx.ModelProto.FromString(model.SerializeToString())  # never modify the caller's copy
    _fix_batch(model, batch)
    model = shape_inference.infer_shapes(model, data_prop=True)
    known = _shapes(model)
    inits = {i.name for i in model.graph.initializer}

    def shape(name: str) -> tuple[int, ...]:
        return known[name][0]

    by_op: dict[str, int] = defaultdict(int)
    macs = other = act_bytes = 0
    unknown: dict[str, int] = defaultdict(int)
    for node in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        try:
            m, o = _node_flops(node, shape, attrs)
        except KeyError:
            unknown[node.op_type] += 1
            continue
        macs += m
        other += o
        by_op[node.op_type] += m + o
        for name in list(node.input) + list(node.output):
            if name and name not in inits and name in known:
                act_bytes += _tensor_bytes(known[name])
    weight_bytes = sum(_tensor_bytes((tuple(i.dims), i.data_type)) for i in model.graph.initializer)
    return {"batch": batch, "flops": macs + other, "macs_flops": macs, "other_flops": other,
            "by_op": {k: v for k, v in sorted(by_op.items(), key=lambda kv: -kv[1]) if v},
            "weight_bytes": weight_bytes, "activation_bytes": act_bytes,
            "bytes": weight_bytes + act_bytes, "unknown_ops": dict(unknown)}
