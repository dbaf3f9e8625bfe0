"""ExecuTorch int8: XNNPACK's quantizer (PT2E), calibrated on the bundle's calibration artifact.

``torch.export`` -> ``prepare_pt2e(XNNPACKQuantizer)`` -> the observers see the artifact's recorded
network inputs (``inputs.safetensors``: real fp32 sampling trajectories, the same calls every other
quantizer reads) -> ``convert_pt2e`` -> ``torch.export`` -> XNNPACK lowering -> ``.pte``
(export/executorch_export.py, the same dynamic/static batch rules as fp32).

Weights int8 symmetric per output channel, activations int8 per tensor (XNNPACK's static config).
Every op XNNPACK quantizes (convolutions, linear layers, adds, muls, concatenations) on the sample
path is quantized (quantize() says why not only the convolutions, as ort_quant.py does); the
conditioning path (timestep and label embeddings) is found by data flow in the torch graph, as
graph.py finds it in the ONNX graph, and stays float. The sensitivity search names the layers to
keep float by their ONNX node names; the dynamo ONNX exporter records each node's module path
(``pkg.torch.onnx.name_scopes``), which names the torch module holding that layer.

The observers collect their own ranges on the recorded inputs instead of reading the artifact's
per-tensor ranges: those are keyed by ONNX tensor names, which have no one-to-one counterpart
among the observers PT2E inserts (NNCF does the same with the same inputs, openvino_quant.py).
"""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

from edgegen.calibration.graph import sample_input
from edgegen.errors import EdgegenError

CALIBRATION_BATCH = 16


def onnx_layer_modules(onnx_path: Path, names: list[str]) -> dict[str, str]:
    """ONNX node name -> the torch module path it was exported from (dynamo exporter metadata)."""
    import onnx
    out = {}
    for node in onnx.load(str(onnx_path), load_external_data=False).graph.node:
        if node.name not in names:
            continue
        meta = {p.key: p.value for p in node.metadata_props}
        try:
            scopes = ast.literal_eval(meta.get("pkg.torch.onnx.name_scopes", "[]"))  # a Python list literal
        except (ValueError, SyntaxError):
            scopes = []
        if len(scopes) >= 2:
            out[node.name] = scopes[-2]  # [..., module path, op name]
    unknown = sorted(set(names) - set(out))
    if unknown:
        raise EdgegenError(f"cannot map ONNX layers to torch modules (no exporter metadata): {', '.join(unknown)}")
    return out


def _innermost_module(node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    return list(stack.values())[-1][0] if stack else ""


def _quantized_targets():
    import torch
    aten = torch.ops.aten
    return {aten.conv1d.default, aten.conv2d.default, aten.conv_transpose2d.input, aten.linear.default}


def sample_path(gm, spec) -> set:
    """FX nodes of ``gm`` whose value depends on the sample input (x_t, z): the rest is conditioning."""
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    names = [t.name for t in spec.inputs]
    if len(placeholders) != len(names):
        raise EdgegenError(f"the exported graph has {len(placeholders)} inputs, the role has {len(names)}")
    live = {placeholders[names.index(sample_input(spec))]}
    for node in gm.graph.nodes:  # FX graphs are topologically sorted
        if any(a in live for a in node.all_input_nodes):
            live.add(node)
    return live


def quantize(module, ctx, keep_float: list[str]) -> tuple[dict, dict]:
    """Write ``executorch/<role>.int8.pte`` into the bundle ``ctx.m``; returns (manifest entry, info)."""
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                         get_symmetric_quantization_config)
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from edgegen.export import executorch_export as et
    m, role = ctx.m, ctx.role
    spec = m.role(role)
    keep_modules = set(onnx_layer_modules(m.file(role, "onnx"), list(keep_float)).values()) if keep_float else set()
    tctx = target_context(m, role, module)
    max_batch = max(tctx.recipe.static_batches)
    args = et.example_args(tctx, max_batch)  # traced on max_batch rows: see executorch_export.build
    with et.quiet():
        gm = torch.export.export(module, args, dynamic_shapes=et.dynamic_shapes(spec, max_batch)).module()
    on_x = sample_path(gm, spec)
    targets = _quantized_targets()
    quantized = sorted({_innermost_module(n) for n in gm.graph.nodes
                        if n.target in targets and n in on_x and _innermost_module(n) not in keep_modules})
    if not quantized:
        raise EdgegenError("nothing left to quantize: every convolution and linear layer is kept in float")
    chosen = {n.name for n in on_x if n.op == "call_function" and _innermost_module(n) not in keep_modules}
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    # The annotators call the filter on every node of a matched pattern, its weight and bias (get_attr)
    # included: those pass, and every op on the sample path outside the modules kept float. Adds, muls
    # and concatenations there are quantized too: with only the convolutions quantized, XNNPACK's
    # partitioner fails on the UNet ("Invalid partition, found dependency cycles", measured with
    # executorch 1.5.1 on the tiny and small DDPM); the conditioning path stays float.
    quantizer.set_filter_function(lambda n: n.op != "call_function" or n.name in chosen)
    with et.quiet(), torch.no_grad():
        prepared = prepare_pt2e(gm, quantizer)
        for batch in ctx.art.calib.batches(CALIBRATION_BATCH):
            prepared(*[torch.from_numpy(np.ascontiguousarray(batch[t.name])) for t in spec.inputs])
        converted = convert_pt2e(prepared)
    entry, _ = et.write_pte(tctx, converted, "xnnpack", f"{role}.int8")
    info = {"quantized_layers": quantized, "kept_float": list(keep_float),
            "kept_float_modules": sorted(keep_modules), "quantizer": "XNNPACKQuantizer (torchao PT2E)",
            "weights": "int8 symmetric per-channel", "activations": "int8 asymmetric per-tensor",
            "also_quantized": "add, mul, cat on the sample path",
            "calibration_calls": len(ctx.art.calib), "format": "ExecuTorch .pte (XNNPACK)"}
    return entry, info


def target_context(m, role: str, module):
    """A TargetContext on the bundle being calibrated, with the recipe it was exported with."""
    import tempfile

    from edgegen.export.recipe import ExportRecipe
    from edgegen.export.targets import TargetContext
    saved = m.data.get("export", {}).get("recipe", {})
    recipe = ExportRecipe(static_batches=tuple(saved.get("static_batches", ExportRecipe().static_batches)))
    return TargetContext(role, module, m.role(role), {}, m.root, Path(tempfile.gettempdir()), m, recipe)
