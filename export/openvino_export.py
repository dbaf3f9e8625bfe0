"""OpenVINO IR converted from the bundle's ONNX, weights kept in fp32."""
from __future__ import annotations

from pathlib import Path


def export_openvino(onnx_path: Path, xml_path: Path) -> None:
    """Convert ONNX -> IR (.xml + .bin). ``compress_to_fp16=False``: save_model would
    otherwise store fp16 weights and the fp32 parity gate would measure that loss."""
    import openvino as ov
    model = ov.convert_model(str(onnx_path))
    ov.save_model(model, str(xml_path), compress_to_fp16=False)


def write(ctx) -> tuple[dict, dict]:
    """``openvino/<role>.xml`` + ``.bin`` from the role's ONNX (the bundle's, or one in scratch),
    then the parity gate through the openvino backend."""
    from edgegen.export.targets import gated_entry
    from edgegen.manifest import file_entry
    xml_rel = f"openvino/{ctx.role}.xml"
    export_openvino(ctx.onnx(), ctx.path(xml_rel))
    entry = file_entry(ctx.root, xml_rel)
    entry["companions"] = [file_entry(ctx.root, f"openvino/{ctx.role}.bin")]
    return gated_entry(ctx, "openvino", "openvino", entry)
