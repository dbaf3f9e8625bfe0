"""What evaluation asks of a pipeline beyond its samples (evaluate.py scores every family):

- the request: labels cycle 0..9; a model whose condition stage takes prompts gets a prompt built
  from a *held-out* caption template (captions.HELD_OUT_TEMPLATES, cycled) for that label;
- reconstruction, for pipelines with an encoder and a decoder stage: the whole test split through
  the exported encoder and decoder: evaluator accuracy on the reconstructions, MSE, and codebook
  usage / perplexity / dead codes.
"""
from __future__ import annotations

import numpy as np

from edgegen.runtimes.backends import create_backend


def sample_request(pipe, n: int) -> tuple[np.ndarray, dict]:
    """(labels (n,), the sample() keyword arguments that ask for them)."""
    labels = np.arange(n, dtype=np.int64) % max(1, pipe.manifest.num_classes)
    if pipe.condition.takes_prompt:
        from edgegen.train.captions import HELD_OUT_TEMPLATES, caption
        prompts = [caption(HELD_OUT_TEMPLATES[i % len(HELD_OUT_TEMPLATES)], int(y)) for i, y in enumerate(labels)]
        return labels, {"prompt": prompts}
    return labels, {"labels": labels} if pipe.manifest.num_classes > 0 else {}


def reconstruction(pipe, evaluator, batch_size: int = 256) -> dict:
    """The test split through the pipeline backend's encoder and decoder."""
    from edgegen.train.vqvae import codebook_stats
    m = pipe.manifest
    test = evaluator.split("test")
    enc = create_backend(pipe.backend.name, m, m.stage("encoder")["role"])
    codes = np.concatenate([enc.run({"x": test.images[i:i + batch_size]})["codes"]
                            for i in range(0, len(test), batch_size)])
    recon = pipe.decoder(codes, batch_size)
    stats = codebook_stats(codes, m.role(m.stage("decoder")["role"]).meta["codebook_size"])
    stats.update({"n": len(test), "accuracy": evaluator.accuracy(recon, test.labels),
                  "real_accuracy": evaluator.accuracy(test.images, test.labels),
                  "mse": float(np.mean((recon - test.images) ** 2)), "dead_codes": len(stats["dead_codes"])})
    return stats
