"""Score a bundle or run: sample label-conditioned (or prompted) images on a backend, run the evaluator.

``manifest_evaluator`` picks the evaluator from the manifest's data source and sample shape; ``edgegen
eval``, ``edgegen demo`` and the calibration gate (``gate_scorer``) all go through it."""
from __future__ import annotations

import time
from typing import Optional

import numpy as np

from edgegen.manifest import Manifest
from edgegen.runtimes.api import Pipeline, default_backend


def manifest_evaluator(manifest: Manifest, progress: bool = True):
    """The evaluator of a model's data set and sample shape (digits, fashion, a labeled folder), as its
    manifest records them (``data.source``, ``sample_shape``); a one-line EdgegenError when none scores it."""
    from edgegen.train.evaluator import evaluator_for
    return evaluator_for(manifest.data["data"].get("source"), manifest.sample_shape, progress=progress)


def metric_names(manifest: Manifest) -> dict:
    """How a report names the scores: "digit-FID" / "fashion-FID"; "prompt accuracy" for prompt models."""
    source = str(manifest.data["data"].get("source"))
    fid = {"digits": "digit-FID", "fashion": "fashion-FID"}.get(source, f"FID ({source})")
    return {"fid": fid, "accuracy": "prompt accuracy" if takes_prompt(manifest) else "class accuracy"}


def takes_prompt(manifest: Manifest) -> bool:
    from edgegen.runtimes.stages import make_condition
    return make_condition(manifest).takes_prompt


def held_out_prompts(manifest: Manifest, labels: np.ndarray) -> list[str]:
    """Label i gets held-out caption template i mod 3 of the caption set the model was trained with:
    the latent family captions its own data set (ldm_captions), the DALL-E family always digits."""
    from edgegen.train.ldm_captions import DIGITS, caption_set
    caps = caption_set(manifest.data["data"].get("source")) if manifest.family == "ldm" else DIGITS
    t = caps.held_out_templates
    return [caps.caption(t[i % len(t)], int(y)) for i, y in enumerate(labels)]


def sample_request(m: Manifest, n: int) -> tuple[np.ndarray, dict]:
    """(labels (n,), the sample() keyword arguments that ask for them): labels cycle 0..K-1."""
    labels = np.arange(n, dtype=np.int64) % max(1, m.num_classes)
    if takes_prompt(m):
        return labels, {"prompt": held_out_prompts(m, labels)}
    return labels, {"labels": labels} if m.num_classes > 0 else {}


def evaluate_pipeline(pipe: Pipeline, n: int = 500, seed: int = 0, sampler: Optional[str] = None,
                      steps: Optional[int] = None, guidance: Optional[float] = None, batch_size: int = 100,
                      progress: bool = True, evaluator=None, reconstruct: bool = True,
                      **options) -> tuple[dict, np.ndarray]:
    """Returns (scores, samples). Labels cycle 0..9 so every class is equally present; a prompt model
    gets the held-out caption template of each label. ``options``: the generator's (e.g. top_k).
    ``reconstruct``: autoencoder models also score their encoder -> decoder reconstructions."""
    m = pipe.manifest
    if m.data["data"].get("source") == "moons":
        return _evaluate_moons(pipe, n, seed, sampler, steps, batch_size)
    ev = evaluator or manifest_evaluator(m, progress)
    from edgegen.train.token_eval import reconstruction
    labels, request = sample_request(m, n)
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
    scores["metrics"] = metric_names(m)
    if pipe.condition.takes_prompt:
        scores["prompts"] = "held-out templates"
    elif not pipe.generator.has_plans:  # a token loop started from the label's token
        scores["prompts"] = "label token"
    # an autoencoder: its reconstructions too, on backends that run single roles (the native library
    # runs the encoder only inside its whole-pipeline call)
    if reconstruct and m.stage("encoder") and m.stage("decoder") and pipe.backend.pipeline_executor() is None:
        latent = "scale" in m.stage("encoder")  # a VAE (latent diffusion), else a VQ-VAE's codes
        scores["reconstruction"] = latent_reconstruction(pipe, ev) if latent else reconstruction(pipe, ev)
    return scores, images


def latent_reconstruction(pipe: Pipeline, evaluator, n: int = 1000, batch_size: int = 256) -> dict:
    """The first ``n`` test images through the pipeline backend's VAE encoder and decoder (the
    stages' ``scale`` cancels): mean squared error and the classifier's accuracy on them."""
    from edgegen.runtimes.backends import create_backend
    from edgegen.runtimes.stages import RoleStage
    m = pipe.manifest
    test = evaluator.split("test")
    x, y = test.images[:n], test.labels[:n]
    stage = m.stage("encoder")
    encode = RoleStage(stage, create_backend(pipe.backend.name, m, stage["role"]), direction="encode")
    recon = pipe.decoder(encode(x, batch_size), batch_size)
    return {"n": len(x), "mse": float(np.mean((recon - x) ** 2)), "accuracy": evaluator.accuracy(recon, y),
            "real_accuracy": evaluator.accuracy(x, y), "fid": evaluator.fid(recon)}


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
    from edgegen.train.evaluator import unavailable
    reason = unavailable(manifest.data["data"].get("source"), manifest.sample_shape)
    if reason:
        return None, f"{reason}: drift is the gate"
    cache: list = []  # the evaluator, trained or loaded on the first call only

    def scorer(pipe, **kw) -> dict:
        """Prompt models are prompted with the held-out caption templates (sample_request)."""
        if not cache:
            cache.append(manifest_evaluator(manifest, progress))
        return evaluate_pipeline(pipe, evaluator=cache[0], reconstruct=False, **kw)[0]
    return scorer, None


def evaluate(source, backend: Optional[str] = None, **kw) -> tuple[dict, np.ndarray]:
    """Score a bundle or run folder (a path), or an opened Manifest."""
    from edgegen.train.runs import open_source
    manifest = source if isinstance(source, Manifest) else open_source(source)
    backend = backend or default_backend(manifest)
    scores, images = evaluate_pipeline(Pipeline(manifest, backend), **kw)
    scores["path"] = str(manifest.root)
    return scores, images
