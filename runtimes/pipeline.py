"""One Pipeline for every bundle: condition -> generator -> optional decoder (stages.py).

    from edgegen.runtimes.pipeline import open_pipeline
    pipe = open_pipeline("bundles/ddpm-small", backend="onnxruntime")
    images = pipe.sample(16, seed=0, labels=3)                       # (16, 1, 16, 16) in [-1, 1]
    images = open_pipeline("bundles/dalle-small").sample(4, prompt="a handwritten seven", top_k=20)

``callback(done, total)`` is called after every network step (plan steps, tokens); returning
False stops the run with ``edgegen.errors.Cancelled``. Not thread-safe: one per thread.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np

from edgegen.errors import EdgegenError
from edgegen.manifest import Manifest, read_manifest
from edgegen.runtimes.backends import create_backend
from edgegen.runtimes.backends.base import Backend
from edgegen.runtimes.interpreter import Callback
from edgegen.runtimes.stages import RoleStage, check_request, make_condition, make_generator


def open_manifest(path: Union[str, Path], verify: bool = True) -> Manifest:
    """A bundle folder (manifest.json). Training runs are opened by edgegen.train.runs.open_source."""
    path = Path(path)
    if not path.exists():
        raise EdgegenError(f"bundle not found: {path}")
    return read_manifest(path, verify=verify)


def default_backend(manifest: Manifest) -> str:
    """onnxruntime for bundles; torch for a training run (it has torch weights only)."""
    return "onnxruntime" if "onnx" in manifest.formats(manifest.generator["role"]) else "torch"


class Pipeline:
    """Sampling for one bundle on one backend.

    ``backend``: a backend name for every role, or a Backend for the generator role (roles
    without one get a backend of the same name), or ``{role: Backend}``."""

    def __init__(self, manifest: Manifest, backend: Union[str, Backend, dict] = "onnxruntime",
                 precision: str = "fp32", **backend_opts):
        self.manifest = manifest
        given = backend if isinstance(backend, dict) else {manifest.generator["role"]: backend} \
            if isinstance(backend, Backend) else {}
        name = backend if isinstance(backend, str) else next(iter(given.values())).name

        def get(role: str) -> Backend:
            return given.get(role) or create_backend(name, manifest, role, precision, **backend_opts)

        self.condition = make_condition(manifest)
        self.backend = get(manifest.generator["role"])
        self.generator = make_generator(manifest, self.backend)
        dec = manifest.stage("decoder")
        self.decoder = RoleStage(dec, get(dec["role"])) if dec else None

    # -- what callers ask about ---------------------------------------------------------------
    @property
    def sampling(self) -> dict:
        return self.manifest.generator

    @property
    def eval_seconds(self) -> float:
        """Seconds inside network calls (generator and decoder), for profiling."""
        ex = getattr(self.generator, "executor", self.generator)
        return ex.network_seconds + (self.decoder.network_seconds if self.decoder else 0.0)

    @property
    def eval_calls(self) -> int:
        return getattr(self.generator, "executor", self.generator).network_calls

    def reset_counters(self) -> None:
        ex = getattr(self.generator, "executor", self.generator)
        ex.network_seconds, ex.network_calls = 0.0, 0
        if self.decoder:
            self.decoder.network_seconds = 0.0

    def labels(self, n: int, labels=None) -> np.ndarray:
        return self.condition.labels(n, labels)

    def describe(self, **options) -> str:
        """The generator's settings for these options: a plan key, or the token sampling."""
        return self.generator.describe(**{k: v for k, v in options.items() if v is not None})

    def plan(self, sampler: Optional[str] = None, steps: Optional[int] = None, **options):
        """The plan this pipeline would run (plan generators only)."""
        return self.generator.plan(sampler, steps, **{k: v for k, v in options.items() if v is not None})

    # -- sampling -------------------------------------------------------------------------------
    def sample(self, n: int, seed: int = 0, labels=None, prompt=None, batch_size: int = 64,
               progress: bool = False, callback: Optional[Callback] = None, **options) -> np.ndarray:
        """n samples (n, *sample shape) float32 in the data range; same seed -> same samples.

        ``options``: the generator's (plans: sampler, steps, guidance and the sampler's own options
        such as eta; token loops: temperature, top_k, top_p); None means the bundle's default."""
        options = {k: v for k, v in options.items() if v is not None}
        check_request(n, seed, batch_size)
        self.generator.check_options(options)
        cond = self.condition.prepare(n, labels, prompt)
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(desc=f"{self.describe(**options)} on {self.backend.name}", unit="step", dynamic_ncols=True)
            callback = _with_bar(bar, callback)
        try:
            out = self.generator.generate(cond, seed, batch_size, callback, **options)
        finally:
            if bar is not None:
                bar.close()
        return self.decoder(out, batch_size) if self.decoder else out


def _with_bar(bar, callback: Optional[Callback]) -> Callback:
    def cb(done: int, total: int):
        bar.total = total
        bar.update(done - bar.n)
        return None if callback is None else callback(done, total)
    return cb


def open_pipeline(path: Union[str, Path], backend: str = "onnxruntime", precision: str = "fp32",
                  **backend_opts) -> Pipeline:
    return Pipeline(open_manifest(path), backend, precision, **backend_opts)
