"""OpenVINO INT8 through NNCF post-training quantization, on the bundle's fp32 IR.

NNCF collects its own statistics on the OpenVINO graph (its ops are not one-to-one with the
ONNX nodes), from the same recorded calibration inputs as every other quantizer
(artifact.inputs). The conditioning path - every op that does not depend on the sample
input, found by data flow on the OpenVINO graph - is an ignored scope, and so are the layers
the mixed-precision search keeps in float (ONNX node names; the OpenVINO ops converted from
a node carry its name, sometimes with a ``/suffix``).

Two NNCF defaults are wrong for diffusion networks, measured on the small DDPM (mean
DDIM-50 drift vs fp32): activation ranges averaged over samples (MEAN_MINMAX) clip the
wide activations of the noisy timesteps, and fast bias correction shifts every bias by an
error averaged over all timesteps: drift 0.086 with the defaults, 0.084 with min/max ranges,
0.009 with min/max ranges and no bias correction (ONNX Runtime's QDQ model: 0.009).
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

from edgegen.calibration.graph import sample_input
from edgegen.calibration.record import CalibrationSet
from edgegen.errors import EdgegenError


def _ops_depending_on(model, source: str) -> set[str]:
    live: set[str] = set()
    for op in model.get_ordered_ops():
        name = op.get_friendly_name()
        if op.get_type_name() == "Parameter":
            if name == source:
                live.add(name)
            continue
        if any(inp.get_source_output().get_node().get_friendly_name() in live for inp in op.inputs()):
            live.add(name)
    return live


def ignored_names(model, spec, keep_float: list[str] = ()) -> list[str]:
    on_x = _ops_depending_on(model, sample_input(spec))
    out = []
    keep = set(keep_float)
    for op in model.get_ordered_ops():
        kind, name = op.get_type_name(), op.get_friendly_name()
        if kind in ("Parameter", "Constant", "Result"):
            continue
        if name not in on_x or name in keep or name.split("/")[0] in keep:
            out.append(name)
    return out


def quantize(fp32_xml: Path, out_xml: Path, calib: CalibrationSet, spec, keep_float: list[str] = (),
             batch: int = 1) -> dict:
    """Write the int8 IR (xml + bin) to ``out_xml``; returns what was ignored."""
    import openvino as ov
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import nncf
        logging.getLogger("nncf").setLevel(logging.ERROR)
        model = ov.Core().read_model(str(fp32_xml))
        ignored = ignored_names(model, spec, keep_float)
        items = list(calib.batches(batch))
        if not items:
            raise EdgegenError("the calibration set is empty: nothing to quantize OpenVINO with")
        try:
            from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
            from nncf.quantization.range_estimator import RangeEstimatorParametersSet
            adv = AdvancedQuantizationParameters(
                activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX, disable_bias_correction=True)
            q = nncf.quantize(model, nncf.Dataset(items), preset=nncf.QuantizationPreset.MIXED,
                              subset_size=len(items), ignored_scope=nncf.IgnoredScope(names=ignored, validate=False),
                              advanced_parameters=adv)
        except Exception as e:  # NNCF raises many types; keep its first line
            raise EdgegenError(f"NNCF quantization failed: {str(e).strip().splitlines()[0]}") from e
        Path(out_xml).parent.mkdir(parents=True, exist_ok=True)
        ov.save_model(q, str(out_xml), compress_to_fp16=False)
    fq = sum(1 for op in q.get_ordered_ops() if op.get_type_name() == "FakeQuantize")
    return {"tool": f"nncf {nncf.__version__}", "preset": "mixed", "activation_ranges": "minmax",
            "bias_correction": False, "ignored_scope_ops": len(ignored), "kept_float": list(keep_float),
            "fake_quantize_ops": fq, "subset_size": len(items)}
