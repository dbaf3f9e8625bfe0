"""Score token models (VQ-VAE prior, DALL-E style) with the digit evaluator, on any backend.

- samples: labels cycle 0..9; the class prior gets the label token, the text model a prompt built
  from a *held-out* caption template (captions.HELD_OUT_TEMPLATES, cycled) for that label;
  class accuracy and digit-FID (with its references) of the generated images;
- reconstruction: the whole test split through the exported encoder and decoder: evaluator accuracy
  on the reconstructions, MSE, and codebook usage / perplexity / dead codes.
"""
from __future__ import annotations

import time

import numpy as np

from edgegen.runtimes.backends import create_backend


def sample_request(pipe, n: int) -> tuple[np.ndarray, dict]:
    """(labels (n,), the sample() keyword arguments that ask for them)."""
    labels = np.arange(n, dtype=np.int64) % max(1, pipe.manifest.num_classes)
    if pipe.sampling["condition"] == "text":
        from edgegen.train.captions import HELD_OUT_TEMPLATES, caption
        prompts = [caption(HELD_OUT_TEMPLATES[i % len(HELD_OUT_TEMPLATES)], int(y)) for i, y in enumerate(labels)]
        return labels, {"prompt": prompts}
    return labels, {"labels": labels}


def reconstruction(pipe, evaluator, batch_size: int = 256) -> dict:
    """The test split through the pipeline backend's encoder and decoder."""
    from edgegen.train.data import load_images
    from edgegen.train.vqvae import codebook_stats
    m = pipe.manifest
    test = load_images("digits", "test", 16, 1)
    enc = create_backend(pipe.backend.name, m, m.sampling["encoder"])
    codes = np.concatenate([enc.run({"x": test.images[i:i + batch_size]})["codes"]
                            for i in range(0, len(test), batch_size)])
    recon = np.concatenate([pipe.decode(codes[i:i + batch_size]) for i in range(0, len(test), batch_size)])
    stats = codebook_stats(codes, m.role(m.sampling["decoder"]).meta["codebook_size"])
    stats.update({"n": len(test), "accuracy": evaluator.accuracy(recon, test.labels),
                  "real_accuracy": evaluator.accuracy(test.images, test.labels),
                  "mse": float(np.mean((recon - test.images) ** 2)), "dead_codes": len(stats["dead_codes"])})
    return stats


def evaluate_tokens(pipe, evaluator, n: int = 500, seed: int = 0, batch_size: int = 100, progress: bool = True,
                    temperature=None, top_k=None, top_p=None) -> tuple[dict, np.ndarray]:
    """Returns (scores, samples), in the shape evaluate.evaluate_pipeline gives for plan models."""
    labels, request = sample_request(pipe, n)
    cfg = pipe.token_sampling(temperature, top_k, top_p)
    pipe.eval_seconds, pipe.eval_calls = 0.0, 0
    t0 = time.perf_counter()
    images = pipe.sample(n, seed=seed, temperature=temperature, top_k=top_k, top_p=top_p, batch_size=batch_size,
                         progress=progress, **request)
    seconds = time.perf_counter() - t0
    scores = evaluator.score(images, labels)
    scores.update({"backend": pipe.backend.name, "seed": seed, "guidance": None,
                   "plan": f"tokens(temperature={cfg.temperature}, top_k={cfg.top_k}, top_p={cfg.top_p})",
                   "prompts": "held-out templates" if "prompt" in request else "label token",
                   "latency": {"seconds": seconds, "per_sample_ms": 1000 * seconds / n,
                               "network_seconds": pipe.eval_seconds, "network_calls": pipe.eval_calls,
                               "batch_size": batch_size},
                   "reconstruction": reconstruction(pipe, evaluator)})
    return scores, images
