"""ONNX Runtime static INT8 in QDQ form, with activation ranges from the calibration artifact.

QDQ (QuantizeLinear/DequantizeLinear pairs around float ops) is what ORT's CPU kernels fuse
into integer convolutions and what the Qualcomm NPU execution provider consumes. Weights are
int8, symmetric, per output channel; activations uint8 asymmetric with the artifact's
min/max (or its 99.99th percentile). Only Conv/ConvTranspose/MatMul/Gemm on the sample path
are quantized: the conditioning path (timestep and label embeddings, graph.py) and the
layers ``keep_float`` names stay float.

ORT's own calibrators would run the model again; feeding ``QDQQuantizer`` the artifact's
ranges keeps one source of truth for every runtime.
"""
from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx

from edgegen.calibration.artifact import Artifact
from edgegen.calibration.graph import QUANTIZED_OPS, conditioning_nodes, quantizable_nodes
from edgegen.errors import EdgegenError


def tensors_range(art: Artifact, method: str = "minmax"):
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData
    data = {}
    for name, r in art.ranges.items():
        lo, hi = float(r["min"]), float(r["max"])
        if method == "percentile":  # clip both ends at the percentile of |x|
            a = art.amax(name, "percentile")
            lo, hi = max(lo, -a), min(hi, a)
        data[name] = TensorData(lowest=np.array(lo, dtype=np.float32), highest=np.array(hi, dtype=np.float32))
    return TensorsData(CalibrationMethod.MinMax, data)


def quantize(fp32_onnx: Path, out: Path, art: Artifact, spec, keep_float: list[str] = (), method: str = "minmax",
             per_channel: bool = True) -> dict:
    """Write the QDQ int8 model to ``out``; returns what was quantized and what stayed float."""
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer
    from onnxruntime.quantization.quant_utils import load_model_with_shape_infer, update_opset_version
    from edgegen.export.onnx_data import load_graph
    base = load_graph(fp32_onnx)  # node names only; ORT's loader below reads the weights, external data too
    targets = quantizable_nodes(base, spec)
    unknown = sorted(set(keep_float) - set(targets))
    if unknown:
        raise EdgegenError(f"cannot keep unknown layers in float: {', '.join(unknown)}")
    quantized = [n for n in targets if n not in set(keep_float)]
    if not quantized:
        raise EdgegenError("nothing left to quantize: every Conv/MatMul/Gemm layer is kept in float")
    excluded = conditioning_nodes(base, spec) + list(keep_float)
    model = load_model_with_shape_infer(Path(fp32_onnx))
    model = update_opset_version(model, QuantType.QInt8, QuantType.QUInt8)
    with contextlib.redirect_stdout(io.StringIO()):
        logging.getLogger().setLevel(logging.ERROR)
        q = QDQQuantizer(model, per_channel, False, QuantType.QInt8, QuantType.QUInt8, tensors_range(art, method),
                         quantized, excluded, list(QUANTIZED_OPS),
                         {"WeightSymmetric": True, "ActivationSymmetric": False})
        q.quantize_model()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        tmp_path = Path(tmp) / out.name
        q.model.save_model_to_file(str(tmp_path), False)
        onnx.checker.check_model(str(tmp_path))
        tmp_path.replace(out)
    return {"quantized_layers": quantized, "kept_float": list(keep_float),
            "conditioning_path_nodes": len(excluded) - len(keep_float), "activation_range": method,
            "weights": "int8 symmetric per-channel" if per_channel else "int8 symmetric per-tensor",
            "activations": "uint8 asymmetric per-tensor", "format": "QDQ"}
