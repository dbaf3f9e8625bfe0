"""Score a bundle or run: sample label-conditioned images on a backend, run the evaluator."""
from __future__ import annotations

import time
from typing import Optional

import numpy as np

from edgegen.manifest import Manifest
from edgegen.runtimes.api import Pipeline, default_backend


def evaluate_pipeline(pipe: Pipeline, n: int = 500, seed: int = 0, sampler: Optional[str] = None,
                      steps: Optional[int] = None, guidance: Optional[float] = None, batch_size: int = 100,
                      progress: bool = True, evaluator=None, **options) -> tuple[dict, np.ndarray]:
    """Returns (scores, samples). Labels cycle 0..9 so every class is equally present; a prompt model
    gets the held-out caption template of each label. ``options``: the generator's (e.g. top_k)."""
    from edgegen.train.evaluator import evaluator_for
    m = pipe.manifest
    if m.data["data"].get("source") == "moons":
        return _evaluate_moons(pipe, n, seed, sampler, steps, batch_size)
    # The evaluator of the model's data set and shape (digits, fashion, a labeled folder), or a one-line reason.
    ev = evaluator or evaluator_for(m.data["data"].get("source"), m.sample_shape, progress=progress)
    from edgegen.train.token_eval import reconstruction, sample_request
    labels, request = sample_request(pipe, n)
    options = {k: v for k, v in dict(options, sampler=sampler, steps=steps, guidance=guidance).items()
               if v is not None}
    described = pipe.describe(**options)
    pipe.reset_counters()
    t0 = time.perf_counter()
    images = pipe.sample(n, seed=seed, batch_size=batch_size, progress=progress, **request, **options)
    seconds = time.perf_counter() - t0
    scores = ev.score(images, labels if m.num_classes > 0 else None)
    w = m.generator.get("defaults", {}).get("guidance") if guidance is None else guidance
    scores.update({"backend": pipe.backend.name, "plan": described, "guidance": w, "seed": seed,
                   "latency": {"seconds": seconds, "per_sample_ms": 1000 * seconds / n,
                               "network_seconds": pipe.eval_seconds, "network_calls": pipe.eval_calls,
                               "batch_size": batch_size}})
    if pipe.condition.takes_prompt:
        scores["prompts"] = "held-out templates"
    elif not pipe.generator.has_plans:  # a token loop started from the label's token
        scores["prompts"] = "label token"
    if m.stage("encoder") and m.stage("decoder"):  # an autoencoder: score its reconstructions too
        scores["reconstruction"] = reconstruction(pipe, ev)
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
    from edgegen.train.evaluator import evaluator_for, unavailable
    source, shape = manifest.data["data"].get("source"), manifest.sample_shape
    reason = unavailable(source, shape)
    if reason:
        return None, f"{reason}: drift is the gate"
    cache: list = []  # the evaluator, trained or loaded on the first call only

    def scorer(pipe, **kw) -> dict:
        if not cache:
            cache.append(evaluator_for(source, shape, progress=progress))
        return evaluate_pipeline(pipe, evaluator=cache[0], **kw)[0]
    return scorer, None


def evaluate(source, backend: Optional[str] = None, **kw) -> tuple[dict, np.ndarray]:
    """Score a bundle or run folder (a path), or an opened Manifest."""
    from edgegen.train.runs import open_source
    manifest = source if isinstance(source, Manifest) else open_source(source)
    backend = backend or default_backend(manifest)
    scores, images = evaluate_pipeline(Pipeline(manifest, backend), **kw)
    scores["path"] = str(manifest.root)
    return scores, images
