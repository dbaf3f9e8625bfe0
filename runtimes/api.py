"""The Python API apps use: open a bundle (or a training run), pick a backend, sample.

    from edgegen.runtimes.api import open_pipeline
    pipe = open_pipeline("bundles/ddpm-small", backend="onnxruntime")
    images = pipe.sample(16, seed=0, labels=3)   # (16, 1, 16, 16) float32 in [-1, 1]
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Union

import numpy as np

from edgegen import __version__
from edgegen.errors import EdgegenError
from edgegen.manifest import SCHEMA_VERSION, Manifest, file_entry, read_manifest
from edgegen.runtimes.backends import create_backend
from edgegen.runtimes.backends.base import Backend
from edgegen.runtimes.interpreter import EvalHook, run_plan
from edgegen.runtimes.plans import Plan, compile_plan, plan_key

MAX_SAMPLES = 1_000_000


def manifest_from_run(run_path: Path) -> Manifest:
    """An in-memory manifest for a training run: its torch weights are the only format."""
    from edgegen.config import to_dict
    from edgegen.train.families import get_family
    from edgegen.train.runs import WEIGHTS, load_run_config
    meta, cfg = load_run_config(run_path)
    family = get_family(meta["family"])
    if not (Path(run_path) / WEIGHTS).is_file():
        raise EdgegenError(f"missing checkpoint {Path(run_path) / WEIGHTS}")
    weights = file_entry(Path(run_path), WEIGHTS)
    roles = {name: {**spec.to_json(), "files": {"torch": {"fp32": weights}}}
             for name, spec in family.roles(cfg).items()}
    data = {"schema_version": SCHEMA_VERSION, "edgegen_version": __version__, "family": meta["family"],
            "data": family.data_info(cfg), "roles": roles, "sampling": family.sampling_info(cfg),
            "plans": {}, "training": {"config": to_dict(cfg), "stats": meta.get("stats", {})}}
    return Manifest(Path(run_path), data)


def open_manifest(path: Union[str, Path], verify: bool = True) -> Manifest:
    """A bundle folder (manifest.json) or a training run folder (config.json)."""
    from edgegen.train.runs import is_run
    path = Path(path)
    if not path.exists():
        raise EdgegenError(f"bundle or run not found: {path}")
    if is_run(path):
        return manifest_from_run(path)
    return read_manifest(path, verify=verify)


def default_backend(manifest: Manifest) -> str:
    """onnxruntime for bundles; torch for a training run (it has torch weights only)."""
    return "onnxruntime" if "onnx" in manifest.formats(manifest.sampling["role"]) else "torch"


class Pipeline:
    """Sampling for one bundle on one backend. Not thread-safe: use one per thread."""

    def __new__(cls, manifest: Manifest, *args, **kwargs):
        # Token families (VQ-VAE prior, DALL-E style) sample with the shared token loop instead of a plan.
        if cls is Pipeline and manifest.sampling.get("kind") == "tokens":
            from edgegen.runtimes.token_pipeline import TokenPipeline
            return TokenPipeline(manifest, *args, **kwargs)
        return super().__new__(cls)

    def __init__(self, manifest: Manifest, backend: Union[str, Backend] = "onnxruntime",
                 precision: str = "fp32", **backend_opts):
        self.manifest = manifest
        self.sampling = manifest.sampling
        if self.sampling.get("kind") != "plan":
            raise EdgegenError(f"sampling kind {self.sampling.get('kind')!r} is not supported yet")
        role = self.sampling["role"]
        self.backend = backend if isinstance(backend, Backend) else create_backend(
            backend, manifest, role, precision, **backend_opts)
        spec = self.backend.spec
        meta = spec.meta or {}
        # Role meta names the time and label inputs (either may be absent); the other input is the sample.
        self._t, self._y = meta.get("time_input"), meta.get("label_input")
        self._x = next(t.name for t in spec.inputs if t.name not in (self._t, self._y))
        self._out = spec.outputs[0].name
        self.eval_seconds = 0.0  # time spent inside network calls, for profiling
        self.eval_calls = 0

    # -- the network as the interpreter sees it ---------------------------------
    def _net(self, x: np.ndarray, t: Optional[np.ndarray], y: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        inputs = {self._x: x}
        if self._t is not None:
            if t is None:
                raise EdgegenError(f"the plan calls role '{self.backend.role_name}' without a time, but it needs one")
            inputs[self._t] = t
        if self._y is not None:
            inputs[self._y] = y
        out = self.backend.run(inputs)[self._out]
        self.eval_seconds += time.perf_counter() - t0
        self.eval_calls += 1
        return out

    def plan(self, sampler: Optional[str] = None, steps: Optional[int] = None, eta: Optional[float] = None,
             clip_x0: Optional[bool] = None, **opts) -> Plan:
        """The bundle's stored plan when it has this one, else compiled the same way.

        ``opts``: sampler options of other processes (sde: snr, eps); None means the default."""
        d = self.sampling.get("defaults", {})
        sampler = sampler or d.get("sampler", "ddim")
        if steps is None:
            steps = d.get("steps", 50) if sampler == d.get("sampler", "ddim") else None
        eta = d.get("eta", 0.0) if eta is None else eta
        plan = compile_plan(self.sampling, sampler, steps, eta, clip_x0,
                            **{k: v for k, v in opts.items() if v is not None})
        stored = self.manifest.data.get("plans", {}).get(plan_key(plan.sampler, plan.params))
        return Plan.from_json(stored) if stored else plan

    def labels(self, n: int, labels=None) -> np.ndarray:
        """None: 0, 1, ..., num_classes-1 repeated (null label if unconditional); int: all that label."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
            raise EdgegenError(f"n must be a positive integer, got {n}")
        if n > MAX_SAMPLES:
            raise EdgegenError(f"n = {n} is too large (at most {MAX_SAMPLES})")
        k = self.manifest.num_classes
        if labels is None:
            null = self.manifest.null_label
            return np.arange(n, dtype=np.int64) % k if k > 0 else np.full(n, null or 0, dtype=np.int64)
        arr = np.broadcast_to(np.asarray(labels, dtype=np.int64), (n,)).copy()
        if k == 0:
            raise EdgegenError("this model is unconditional: it takes no label")
        bad = arr[(arr < 0) | (arr >= k)]
        if bad.size:
            raise EdgegenError(f"label {int(bad[0])} is out of range (this model has labels 0..{k - 1})")
        return arr

    def sample(self, n: int, seed: int = 0, labels=None, sampler: Optional[str] = None,
               steps: Optional[int] = None, eta: Optional[float] = None, guidance: Optional[float] = None,
               clip_x0: Optional[bool] = None, batch_size: int = 64, progress: bool = False,
               on_eval: Optional[EvalHook] = None, **opts) -> np.ndarray:
        """n samples (n, *sample shape) float32 in the data range; same seed -> same samples."""
        y = self.labels(n, labels)
        if not 0 <= int(seed) < 2**64:
            raise EdgegenError(f"seed must be in [0, 2**64), got {seed}")
        if batch_size <= 0:
            raise EdgegenError(f"batch size must be positive, got {batch_size}")
        plan = self.plan(sampler, steps, eta, clip_x0, **opts)
        w = self.sampling.get("defaults", {}).get("guidance", 1.0) if guidance is None else float(guidance)
        null = self.manifest.null_label if self.manifest.num_classes > 0 else None
        if on_eval is None and hasattr(self.backend, "run_plan"):  # the native runtime runs whole plans itself
            out, stats = self.backend.run_plan(plan.to_json(), y, int(seed), batch_size, w, null,
                                               self.manifest.sample_shape)
            self.eval_seconds += stats["network_seconds"]
            self.eval_calls += stats["network_calls"]
            return out
        return run_plan(plan, self._net, self.manifest.sample_shape, y, int(seed), batch_size=batch_size,
                        guidance=w, null_label=null, on_eval=on_eval, progress=progress,
                        desc=f"{plan.key} on {self.backend.name}")


def open_pipeline(path: Union[str, Path], backend: str = "onnxruntime", precision: str = "fp32",
                  **backend_opts) -> Pipeline:
    return Pipeline(open_manifest(path), backend, precision, **backend_opts)
