"""Sensitivity analysis: which layers hurt most when quantized, for automatic mixed precision.

Each quantizable layer is quantized *alone* (every other layer float, same artifact ranges)
and the network output on a subset of the recorded calibration inputs (all timesteps) is
compared with fp32: the relative mean squared error of the output is the layer's
sensitivity. Layers are ranked worst first; the mixed-precision search keeps the first k in
float for growing k until the quality gate passes.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edgegen.calibration import ort_quant
from edgegen.calibration.artifact import Artifact
from edgegen.calibration.graph import quantizable_nodes


def _session(path: Path):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def rank(fp32_onnx: Path, art: Artifact, spec, rows: int = 64, method: str = "minmax",
         progress: bool = False) -> list[dict]:
    """[{"layer", "op", "rel_mse"}] worst first."""
    from edgegen.export.onnx_data import load_graph
    model = load_graph(fp32_onnx)  # the graph: external weights stay on disk
    ops = {n.name: n.op_type for n in model.graph.node}
    layers = quantizable_nodes(model, spec)
    idx = np.linspace(0, len(art.calib) - 1, min(rows, len(art.calib))).round().astype(int)
    feeds = {k: v[idx] for k, v in art.calib.inputs.items()}
    out_name = spec.outputs[0].name
    ref = _session(fp32_onnx).run([out_name], feeds)[0].astype(np.float64)
    denom = float(np.mean(ref ** 2)) or 1.0
    result = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "one.onnx"
        for layer in tqdm(layers, desc="sensitivity", disable=not progress, dynamic_ncols=True):
            ort_quant.quantize(fp32_onnx, path, art, spec, keep_float=[o for o in layers if o != layer], method=method)
            got = _session(path).run([out_name], feeds)[0]
            result.append({"layer": layer, "op": ops[layer], "rel_mse": float(np.mean((got - ref) ** 2)) / denom})
    return sorted(result, key=lambda r: -r["rel_mse"])


def schedule(n_layers: int) -> list[int]:
    """How many layers to keep in float at each try: 1, 2, 4, ... up to all but one."""
    ks, k = [], 1
    while k < n_layers:
        ks.append(k)
        k *= 2
    if n_layers > 1 and (not ks or ks[-1] != n_layers - 1):
        ks.append(n_layers - 1)
    return ks
