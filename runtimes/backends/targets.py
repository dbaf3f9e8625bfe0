"""What the deployment-target backends share: the manifest entry's requirements, static
batch sizes (pad a batch up to the next compiled size), and torch <-> numpy at the edges."""
from __future__ import annotations

import platform
from typing import Callable, Optional

import numpy as np

from edgegen.errors import EdgegenError


def target_entry(manifest, role: str, fmt: str, precision: str) -> dict:
    """The role's manifest entry for ``fmt``/``precision`` (one clear line when it is absent)."""
    manifest.file(role, fmt, precision)  # raises "bundle ... has no <precision> <fmt> export of '<role>'"
    return manifest.formats(role)[fmt][precision]


def check_requires(entry: dict, fmt: str) -> None:
    """Refuse an entry whose recorded requirements this machine does not meet."""
    req = entry.get("requires", {})
    system = req.get("system")
    if system and system != platform.system() and req.get("strict_system", False):
        raise EdgegenError(f"this {fmt} export needs {system}, this machine runs {platform.system()}")
    machine = req.get("machine")
    if machine and req.get("device", "cpu") == "cpu" and machine != platform.machine():
        raise EdgegenError(f"this {fmt} export was compiled for {machine}, this machine is {platform.machine()}")


def next_static_batch(batches: list[int], n: int) -> int:
    fits = [b for b in batches if b >= n]
    return min(fits) if fits else max(batches)


def run_static(batches: list[int], arrays: dict[str, np.ndarray],
               run: Callable[[int, dict[str, np.ndarray]], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Run ``run(static_batch, padded inputs)`` over a batch of any size: chunks of the largest
    compiled size, the last one padded (with copies of its first row) up to the next size."""
    n = next(iter(arrays.values())).shape[0]
    parts: list[dict] = []
    start = 0
    while start < n:
        size = next_static_batch(batches, n - start)
        chunk = {k: a[start:start + size] for k, a in arrays.items()}
        real = next(iter(chunk.values())).shape[0]
        if real < size:
            chunk = {k: np.concatenate([a, np.repeat(a[:1], size - real, axis=0)]) for k, a in chunk.items()}
        out = run(size, chunk)
        parts.append({k: v[:real] for k, v in out.items()})
        start += real
    return {k: np.concatenate([p[k] for p in parts]) if len(parts) > 1 else parts[0][k] for k in parts[0]}


def gpu_reason(what: str) -> Optional[str]:
    """None when torch sees an NVIDIA GPU, else why ``what`` cannot run."""
    import torch
    if not torch.cuda.is_available():
        build = "a CPU-only torch build" if torch.version.cuda is None else "no visible CUDA device"
        return f"{what} needs an NVIDIA GPU with CUDA ({build} here)"
    return None
