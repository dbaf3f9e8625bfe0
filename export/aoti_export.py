"""AOTInductor packages (``.pt2``): each role compiled ahead of time to a shared library.

``torch.export`` (dynamic batch and any other named dims) -> ``aoti_compile_and_package``.
Compilation is CPU-heavy (minutes for a small UNet on one core), so packages are cached
under ``cache_dir()/aoti`` keyed by the role's weights, its spec, the torch version and the
device: exporting the same run again copies the cached package instead of recompiling.
The package loads in Python (``torch-aoti`` backend) and from C++ (LibTorch's
``AOTIModelPackageLoader``, shipped in the torch wheel).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import warnings
from pathlib import Path

import torch
from edgegen.export.targets import TargetContext, host, torch_dynamic_shapes

from edgegen.errors import EdgegenError
from edgegen.paths import atomic_write_bytes, cache_dir
from edgegen.roles import RoleSpec

DEVICE = "cpu"  # "cuda" where a GPU exists: the same code, the package then needs that GPU


def cache_key(module: torch.nn.Module, spec: RoleSpec, device: str) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"spec": spec.to_json(), "torch": torch.__version__, "device": device},
                        sort_keys=True).encode())
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


def compile_package(module: torch.nn.Module, spec: RoleSpec, example: dict, path: Path,
                    device: str = DEVICE, use_cache: bool = True) -> bool:
    """Write the role's ``.pt2`` to ``path``; returns True when it came from the cache."""
    cached = cache_dir() / "aoti" / f"{cache_key(module, spec, device)}.pt2"
    if use_cache and cached.is_file():
        shutil.copyfile(cached, path)
        return True
    module = module.eval().to(device)
    args = tuple(torch.from_numpy(example[t.name]).to(device) for t in spec.inputs)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.export.export(module, args, dynamic_shapes=torch_dynamic_shapes(spec))
            torch._inductor.aoti_compile_and_package(program, package_path=str(path))
    except Exception as e:  # inductor raises many types; keep the first line
        raise EdgegenError(f"AOTInductor compile failed: {str(e).strip().splitlines()[0]}") from e
    if use_cache:
        atomic_write_bytes(cached, Path(path).read_bytes())
    return False


def write(ctx: TargetContext) -> tuple[dict, dict]:
    """``aoti/<role>.pt2`` (fp32, dynamic batch), then the parity gate through ``torch-aoti``."""
    from edgegen.export.targets import gated_entry
    from edgegen.manifest import file_entry
    rel = f"aoti/{ctx.role}.pt2"
    from_cache = compile_package(ctx.module, ctx.spec, ctx.example, ctx.path(rel))
    entry = file_entry(ctx.root, rel)
    from edgegen.trust import record_built  # built here: this machine trusts it (SECURITY.md)
    record_built(entry["sha256"], f"aoti {ctx.role} {ctx.root.name}")
    entry.update({"device": DEVICE, "dynamic": True, "from_cache": from_cache,
                  "requires": {"python": ["torch"], "torch": torch.__version__, "device": DEVICE,
                               "system": host()["system"], "machine": host()["machine"]}})
    return gated_entry(ctx, "aoti", "torch-aoti", entry)
