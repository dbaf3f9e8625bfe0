"""OpenVINO IR converted from the bundle's ONNX, weights kept in fp32."""
from __future__ import annotations

from pathlib import Path


def export_openvino(onnx_path: Path, xml_path: Path) -> None:
    """Convert ONNX -> IR (.xml + .bin). ``compress_to_fp16=False``: save_model would
    otherwise store fp16 weights and the fp32 parity gate would measure that loss."""
    import openvino as ov
    model = ov.convert_model(str(onnx_path))
    ov.save_model(model, str(xml_path), compress_to_fp16=False)
