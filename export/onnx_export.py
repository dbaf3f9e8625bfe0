"""ONNX export through the torch.export (dynamo) exporter, dynamic batch dimension."""
from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import onnx
import torch

from edgegen.errors import EdgegenError
from edgegen.roles import RoleSpec

OPSET = 20
MAX_BATCH = 4096
# Weights above this many bytes go to external data, ``<role>.onnx.data`` beside the model (protobuf
# cannot hold 2 GB; the exporter switches by itself above that): the entry lists it as a companion,
# so the manifest's sha256 covers it. Tests lower it to force the path on a tiny model.
EXTERNAL_DATA_BYTES = 2 ** 31 - 2 ** 26


def export_onnx(module: torch.nn.Module, spec: RoleSpec, example: dict, path: Path) -> None:
    """Write ``module`` to ``path`` with the role's input/output names and a dynamic batch."""
    module = module.eval()
    args = tuple(torch.from_numpy(example[t.name]) for t in spec.inputs)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    # Other named dims (a KV cache's "past" may be 0: prefill with an empty cache).
    others = {d: torch.export.Dim(d, min=0, max=MAX_BATCH) for t in spec.inputs for d in t.shape
              if isinstance(d, str) and d != "batch"}
    dynamic = {t.name: {i: batch if d == "batch" else others[d] for i, d in enumerate(t.shape) if isinstance(d, str)}
               for t in spec.inputs}
    log = io.StringIO()
    try:
        # The exporter narrates to stdout and warns about internals; keep the user's console clean.
        with contextlib.redirect_stdout(log), warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, args, input_names=[t.name for t in spec.inputs],
                                        output_names=[t.name for t in spec.outputs],
                                        dynamic_shapes=dynamic, opset_version=OPSET, dynamo=True,
                                        external_data=False, verbose=False)
            program.save(str(path), external_data=weight_bytes(module) > EXTERNAL_DATA_BYTES)
    except Exception as e:  # the exporter raises many types; keep its first line
        raise EdgegenError(f"ONNX export failed: {str(e).strip().splitlines()[0]}") from e
    onnx.checker.check_model(str(path))


def weight_bytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


def external_data(path: Path) -> list[Path]:
    """The external data files an ONNX model names (paths beside it), without loading the weights."""
    model = onnx.load(str(path), load_external_data=False)
    names = {e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"}
    return [path.parent / n for n in sorted(names)]


def write(ctx) -> tuple[dict, dict]:
    """``onnx/<role>.onnx`` (fp32, dynamic batch), then the parity gate through onnxruntime."""
    from edgegen.export.targets import gated_entry
    from edgegen.manifest import file_entry
    rel = f"onnx/{ctx.role}.onnx"
    export_onnx(ctx.module, ctx.spec, ctx.example, ctx.path(rel))
    entry = file_entry(ctx.root, rel)
    data = [p.relative_to(ctx.root).as_posix() for p in external_data(ctx.path(rel))]
    if data:  # weights in external data: sha256-checked with the model (manifest.verify_files, native)
        entry["companions"] = [file_entry(ctx.root, d) for d in data]
    return gated_entry(ctx, "onnx", "onnxruntime", entry)
