"""The export recipe: what the deployment targets are built with, stored in the manifest.

Static-shape targets (Core ML, NPU variants) get one network per batch size listed here;
TensorRT gets one optimization profile spanning them. Runtimes pad a batch up to the
next listed size (runtimes/backends/static_batch.py).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from edgegen.errors import EdgegenError


@dataclass(frozen=True)
class ExportRecipe:
    # 1: interactive use; 8: the parity gate's batch of 4 padded up; 64: the CLI's default --batch-size
    static_batches: tuple[int, ...] = (1, 8, 64)
    coreml_precisions: tuple[str, ...] = ("fp16", "fp32")
    coreml_compute_units: str = "ALL"  # CPU, GPU and the Neural Engine where an op can run there
    coreml_attention: str = "split_einsum"  # or "original": see export/coreml_export.py
    coreml_target: str = "iOS17"  # minimum deployment target of the ML program
    tensorrt_precisions: tuple[str, ...] = ("fp32", "fp16")  # int8 is added when a calibration cache exists
    tensorrt_workspace_mib: int = 1024
    # ExecuTorch programs written beside the gated XNNPACK one and checked structurally; () skips
    # them (`edgegen export --executorch-delegates none`: Vulkan lowering is the slow part)
    executorch_delegates: tuple[str, ...] = ("coreml", "vulkan")
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        b = self.static_batches
        if not b or any(int(v) < 1 for v in b) or list(b) != sorted(set(b)):
            raise EdgegenError(f"static batch sizes must be increasing positive integers, got {list(b)}")
        if self.coreml_attention not in ("split_einsum", "original"):
            raise EdgegenError(f"unknown Core ML attention form '{self.coreml_attention}' "
                               "(choose split_einsum or original)")
        for d in self.executorch_delegates:
            if d not in ("coreml", "vulkan"):
                raise EdgegenError(f"unknown ExecuTorch delegate '{d}' for the extra programs (choose coreml, vulkan "
                                   "or none; XNNPACK is always written)")
        for p in self.coreml_precisions:
            if p not in ("fp16", "fp32"):
                raise EdgegenError(f"unknown Core ML precision '{p}' (choose fp16, fp32)")

    def to_json(self) -> dict:
        d = asdict(self)
        d["static_batches"] = list(self.static_batches)
        d["executorch_delegates"] = list(self.executorch_delegates)
        return d


def parse_batches(text: str) -> tuple[int, ...]:
    try:
        return tuple(sorted({int(v) for v in text.split(",") if v.strip()}))
    except ValueError:
        raise EdgegenError(f"static batch sizes must be a comma list of integers, got '{text}'") from None


def parse_delegates(text: str) -> tuple[str, ...]:
    """'coreml,vulkan' | 'vulkan' | 'none' -> the extra ExecuTorch delegates to write."""
    items = [v.strip() for v in text.split(",") if v.strip()]
    return () if items == ["none"] else tuple(dict.fromkeys(items))
