"""What the deployment targets share: static shapes, multi-file manifest entries, dispatch.

A target writes files for one role and returns ``({precision: manifest entry}, {precision:
check result})``. Entries follow manifest.py (path + sha256 + companions) so ``verify_files``
checks every file; a target adds ``requires`` (what a machine needs to run it) and, for
static-shape targets, ``static_batches`` (batch size -> file or package folder).
Everything here works from the role's RoleSpec alone, so a new family needs no code here.
"""
from __future__ import annotations

import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from edgegen.export.recipe import ExportRecipe

from edgegen.errors import EdgegenError
from edgegen.manifest import file_entry
from edgegen.roles import RoleSpec

if TYPE_CHECKING:
    import torch

    from edgegen.manifest import Manifest

# THE export-format registry, in export order (onnx first: later formats convert from it).
# format -> module with write(ctx: TargetContext) -> ({precision: manifest entry}, {precision: check})
FORMATS = {
    "onnx": "edgegen.export.onnx_export",
    "openvino": "edgegen.export.openvino_export",
    "aoti": "edgegen.export.aoti_export",
    "coreml": "edgegen.export.coreml_export",
    "tensorrt": "edgegen.export.tensorrt_export",
    "npu": "edgegen.export.npu_export",
    "executorch": "edgegen.export.executorch_export",  # after onnx: calibration's artifact reads ONNX
}


def other_dims(spec: RoleSpec) -> list[str]:
    """Symbolic dims other than the batch (a KV cache's "past", a token count "seq")."""
    return sorted({d for t in (*spec.inputs, *spec.outputs) for d in t.shape if isinstance(d, str) and d != "batch"})


def static_reason(spec: RoleSpec) -> Optional[str]:
    """Why a role cannot have static-shape variants (None when it can)."""
    dims = other_dims(spec)
    if dims:
        return (f"dims {', '.join(dims)} vary from call to call (static-shape targets fix every dim "
                "but the batch, which gets one network per listed size)")
    return None


def static_shapes(spec: RoleSpec, batch: int) -> dict[str, tuple[int, ...]]:
    reason = static_reason(spec)
    if reason:
        raise EdgegenError(f"no static shapes: {reason}")
    return {t.name: t.concrete(batch) for t in spec.inputs}


def torch_dynamic_shapes(spec: RoleSpec, max_size: int = 4096) -> dict:
    """torch.export dynamic_shapes for a role: the batch from 1, other named dims from 0."""
    import torch
    dims = {"batch": torch.export.Dim("batch", min=1, max=max_size)}
    dims.update({d: torch.export.Dim(d, min=0, max=max_size) for d in other_dims(spec)})
    return {t.name: {i: dims[d] for i, d in enumerate(t.shape) if isinstance(d, str)} for t in spec.inputs}


def tree_entry(root: Path, primary: str, trees: list[str], **extra) -> dict:
    """One manifest entry for several files/folders: ``primary`` (a file) plus every file under
    ``trees`` as companions, so the bundle's sha256 check covers whole Core ML packages."""
    root = Path(root)
    entry = file_entry(root, primary)
    companions = []
    for rel in trees:
        p = root / rel
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        companions += [file_entry(root, f.relative_to(root).as_posix()) for f in files
                       if f.relative_to(root).as_posix() != primary]
    entry["companions"] = companions
    entry.update(extra)
    return entry


@dataclass
class TargetContext:
    """One role being exported: everything a target needs, nothing family-specific."""
    role: str
    module: "torch.nn.Module"
    spec: RoleSpec
    example: dict  # inputs of the example batch (export/example_inputs.py)
    root: Path  # the bundle being written
    scratch: Path  # temporary files that do not go into the bundle
    manifest: "Manifest"
    recipe: ExportRecipe
    reference: object = None  # export/parity.py Reference of this role (torch)

    def inputs(self, batch: int, seed: int = 0) -> dict:
        """Random inputs for ``batch``; labels include the null label only when the model has one."""
        from edgegen.export.example_inputs import example_inputs
        m = self.manifest
        k = m.num_classes if m.null_label is not None or m.num_classes == 0 else m.num_classes - 1
        return example_inputs(self.spec, batch, seed, k)

    def onnx(self) -> Path:
        """The role's dynamic-batch ONNX: the bundle's own when written, else one in scratch."""
        path = self.root / f"onnx/{self.role}.onnx"
        if not path.exists():
            path = self.scratch / f"{self.role}.onnx"
            if not path.exists():
                from edgegen.export.onnx_export import export_onnx
                export_onnx(self.module, self.spec, self.example, path)
        return path

    def path(self, rel: str) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        return p


def host() -> dict:
    return {"system": platform.system(), "machine": platform.machine(), "python": sys.version.split()[0]}


DEFAULT_FORMATS = ("onnx", "openvino")  # what the demo and a plain `edgegen export` write
TARGETS = tuple(f for f in FORMATS if f not in DEFAULT_FORMATS)  # deployment targets: recorded with the recipe


def parse_formats(text: str) -> list[str]:
    """A comma list of registered export formats."""
    from edgegen.config import parse_choices
    return parse_choices(text, list(FORMATS), "export format")


def write_target(fmt: str, ctx) -> tuple[dict, dict]:
    """Write ``fmt`` for one role (ctx: a TargetContext)."""
    import importlib
    if fmt not in FORMATS:
        raise EdgegenError(f"unknown export format '{fmt}' (choose from {', '.join(FORMATS)})")
    return importlib.import_module(FORMATS[fmt]).write(ctx)


def gated_entry(ctx, fmt: str, backend: str, entry: dict, precision: str = "fp32") -> tuple[dict, dict]:
    """Record ``entry`` in the manifest being written (the backend opens it from there), then run
    the parity gate of that backend against the torch reference."""
    from edgegen.export.parity import gate
    from edgegen.runtimes.backends import create_backend
    ctx.manifest.set_file(ctx.role, fmt, precision, entry)
    other = create_backend(backend, ctx.manifest, ctx.role, precision)
    return {precision: entry}, {precision: gate(ctx.manifest, ctx.reference, other, precision)}


def describe_check(r: dict) -> str:
    """One line for a check result: the parity numbers, else the structural summary."""
    if "single_call_max_abs" in r:
        text = f"single call {r['single_call_max_abs']:.2e}"
        if "trajectory_max_abs" in r:
            text += f", {r.get('trajectory', 'trajectory')} {r['trajectory_max_abs']:.2e}"
        return text
    return r.get("summary", "checked")
