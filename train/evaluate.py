"""Score a bundle or run: sample label-conditioned images on a backend, run the evaluator."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np

from edgegen.errors import EdgegenError
from edgegen.runtimes.api import Pipeline, default_backend, open_manifest


def evaluate_pipeline(pipe: Pipeline, n: int = 500, seed: int = 0, sampler: Optional[str] = None,
                      steps: Optional[int] = None, guidance: Optional[float] = None, batch_size: int = 100,
                      progress: bool = True, evaluator=None) -> tuple[dict, np.ndarray]:
    """Returns (scores, samples). Labels cycle 0..9 so every class is equally present."""
    from edgegen.train.evaluator import get_evaluator
    m = pipe.manifest
    if m.data["data"].get("source") == "moons":
        return _evaluate_moons(pipe, n, seed, sampler, steps, batch_size)
    if m.data["data"].get("source") != "digits" or tuple(m.sample_shape) != (1, 16, 16):
        raise EdgegenError("the digit evaluator scores 1x16x16 digits models only "
                           f"(this one is {m.data['data'].get('source')} {list(m.sample_shape)})")
    ev = evaluator or get_evaluator(progress=progress)
    if m.sampling.get("kind") == "tokens":  # VQ-VAE prior, DALL-E style: the token loop, no plan
        from edgegen.train.token_eval import evaluate_tokens
        return evaluate_tokens(pipe, ev, n=n, seed=seed, batch_size=batch_size, progress=progress)
    labels = pipe.labels(n)
    plan = pipe.plan(sampler, steps)
    pipe.eval_seconds, pipe.eval_calls = 0.0, 0
    t0 = time.perf_counter()
    images = pipe.sample(n, seed=seed, labels=labels, sampler=plan.sampler, steps=plan.params["steps"],
                         guidance=guidance, batch_size=batch_size, progress=progress)
    seconds = time.perf_counter() - t0
    scores = ev.score(images, labels if m.num_classes > 0 else None)
    w = m.sampling.get("defaults", {}).get("guidance", 1.0) if guidance is None else guidance
    scores.update({"backend": pipe.backend.name, "plan": plan.key, "guidance": w, "seed": seed,
                   "latency": {"seconds": seconds, "per_sample_ms": 1000 * seconds / n,
                               "network_seconds": pipe.eval_seconds, "network_calls": pipe.eval_calls,
                               "batch_size": batch_size}})
    return scores, images


def _evaluate_moons(pipe: Pipeline, n: int, seed: int, sampler, steps, batch_size: int) -> tuple[dict, np.ndarray]:
    """2-D moons models: sliced Wasserstein distance to fresh moons (train/moons_eval.py)."""
    from edgegen.train.moons_eval import score_points
    plan = pipe.plan(sampler, steps)
    t0 = time.perf_counter()
    points = pipe.sample(n, seed=seed, sampler=plan.sampler, steps=plan.params["steps"], batch_size=batch_size)
    scores = score_points(points, pipe.manifest.data["data"].get("noise", 0.05))
    scores.update({"backend": pipe.backend.name, "plan": plan.key, "seed": seed,
                   "latency": {"seconds": time.perf_counter() - t0}})
    return scores, points


def gate_scorer(manifest, progress: bool = False):
    """(scorer, reason) for the calibration gate: a callable scoring a pipeline's samples (FID,
    accuracy), or None and why this bundle's data has no evaluator."""
    if manifest.data["data"].get("source") != "digits" or tuple(manifest.sample_shape) != (1, 16, 16):
        return None, "the digit evaluator scores digits models only: drift is the gate"
    from edgegen.train.evaluator import get_evaluator
    cache: list = []  # the evaluator, trained or loaded on the first call only

    def scorer(pipe, **kw) -> dict:
        if not cache:
            cache.append(get_evaluator(progress=progress))
        return evaluate_pipeline(pipe, evaluator=cache[0], **kw)[0]
    return scorer, None


def evaluate(path: Path, backend: Optional[str] = None, **kw) -> tuple[dict, np.ndarray]:
    manifest = open_manifest(path)
    backend = backend or default_backend(manifest)
    scores, images = evaluate_pipeline(Pipeline(manifest, backend), **kw)
    scores["path"] = str(path)
    return scores, images
