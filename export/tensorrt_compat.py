"""TensorRT compatibility report for an ONNX file, without TensorRT.

Where TensorRT cannot be installed, this is how a bundle is checked for it: every op of the
graph (local functions inlined) against the ONNX parser's support matrix (tensorrt_ops.py,
with its source), the matrix's "must be an initializer" restrictions, the opset against the
parser's, and every dynamic input dim against the optimization profile the engine will be
built with. ``passed`` means nothing is unsupported and every dynamic dim has a profile.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import onnx
from edgegen.export import tensorrt_ops as ops


def profile_for(spec, batches: list[int]) -> dict:
    """Optimization profile per symbolic dim: (min, opt, max). The batch spans 1 to twice the
    recipe's largest size (classifier-free guidance doubles the batch), opt = the largest; other
    dims span [0, bound] with the bound from the role meta (``dim_bounds``, else ``block_size``)."""
    meta = spec.meta or {}
    bounds = dict(meta.get("dim_bounds", {}))
    profile = {"batch": [1, max(batches), 2 * max(batches)]}
    for t in (*spec.inputs, *spec.outputs):
        for d in t.shape:
            if isinstance(d, str) and d != "batch" and d not in profile:
                hi = bounds.get(d, meta.get("block_size"))
                if hi is not None:
                    profile[d] = [0, int(hi), int(hi)]
    return profile


def _graph_ops(model: onnx.ModelProto) -> tuple[Counter, list]:
    """Op counts over the main graph and every subgraph (If/Loop bodies); nodes for restrictions."""
    counts: Counter = Counter()
    nodes = []

    def walk(graph):
        for node in graph.node:
            counts[(node.domain or "ai.onnx", node.op_type)] += 1
            nodes.append((graph, node))
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    walk(attr.g)
                for g in attr.graphs:
                    walk(g)

    walk(model.graph)
    return counts, nodes


def _constants(graph) -> set[str]:
    names = {i.name for i in graph.initializer}
    names |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    return names


def report(onnx_path: Path, profile: dict) -> dict:
    model = onnx.load(str(onnx_path), load_external_data=False)  # the graph: a > 2 GB network's weights stay on disk
    if model.functions:  # the dynamo exporter may emit local functions; TensorRT sees them inlined
        model = onnx.inliner.inline_local_functions(model)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    counts, nodes = _graph_ops(model)
    per_op, unsupported, needs_10 = {}, [], []
    for (domain, op), n in sorted(counts.items(), key=lambda kv: kv[0][1]):
        if domain != "ai.onnx":
            status = "unsupported (custom domain: needs a TensorRT plugin)"
            unsupported.append(f"{domain}::{op}")
        elif op in ops.SUPPORTED:
            status = "supported"
        elif op in ops.LATER:
            status = f"supported from TensorRT {ops.LATER_MIN_TENSORRT}"
            needs_10.append(op)
        else:
            status = "unsupported" if op in ops.UNSUPPORTED else "unsupported (not in the parser's matrix)"
            unsupported.append(op)
        per_op[op] = {"count": n, "status": status}
    restrictions = []
    consts = {id(model.graph): _constants(model.graph)}
    for graph, node in nodes:
        rule = ops.RESTRICTIONS.get(node.op_type)
        if not rule:
            continue
        names = consts.setdefault(id(graph), _constants(graph) | consts[id(model.graph)])
        for i in rule[0]:
            if i < len(node.input) and node.input[i] and node.input[i] not in names:
                restrictions.append(f"{node.op_type} {node.name or '?'}: input {i} is computed ({rule[1]})")
    dynamic = []
    for inp in model.graph.input:
        for i, d in enumerate(inp.type.tensor_type.shape.dim):
            if d.HasField("dim_value"):
                continue
            name = d.dim_param or "?"
            sym = "batch" if i == 0 and name not in profile else name
            covered = sym in profile or name in profile
            dynamic.append({"input": inp.name, "axis": i, "dim": name, "profile": profile.get(sym, profile.get(name)),
                            "covered": covered})
    uncovered = [f"{d['input']}[{d['axis']}] ({d['dim']})" for d in dynamic if not d["covered"]]
    if opset > ops.MAX_OPSET:
        needs_10.append(f"opset {opset}")
    min_trt = ops.LATER_MIN_TENSORRT if needs_10 else ops.PARSER.split()[-1]
    if opset > ops.LATER_MAX_OPSET:
        unsupported.append(f"opset {opset} (newest known parser reads {ops.LATER_MAX_OPSET})")
    passed = not unsupported and not uncovered and not restrictions
    summary = (f"{sum(counts.values())} nodes, {len(counts)} op types, opset {opset}: "
               + ("all supported" if not unsupported else f"UNSUPPORTED {', '.join(unsupported)}")
               + (f"; needs TensorRT >= {min_trt} ({', '.join(needs_10)})" if needs_10 else "")
               + (f"; no profile for {', '.join(uncovered)}" if uncovered else "")
               + (f"; {len(restrictions)} restriction(s) broken" if restrictions else ""))
    return {"check": "tensorrt-compatibility", "passed": passed, "onnx": Path(onnx_path).name, "opset": opset,
            "parser_matrix": {"parser": ops.PARSER, "max_opset": ops.MAX_OPSET, "source": ops.__doc__.split("\n\n")[1]
                              .replace("\n", " ")},
            "min_tensorrt": min_trt, "ops": per_op, "unsupported": unsupported, "restrictions": restrictions,
            "dynamic_dims": dynamic, "profile": profile, "summary": summary}
