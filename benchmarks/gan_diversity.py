"""Score a trained GAN run (or any digits run's generator) for FID, accuracy, diversity and memorization.

    .venv/bin/python benchmarks/gan_diversity.py RUN [RUN ...] [--n 500] [--grid PNG] [--pairs PNG]

Samples G(z, y) in PyTorch straight from the run folder (no export, so it runs while the
recipe changes), labels cycling 0..9 as `edgegen eval` does, and prints one JSON line per
run. The acceptance figures of issue 21 are measured with `edgegen eval` on the exported
bundle; this is the quick loop used to compare recipes (docs/notes/issue-21.md).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


def sample_run(run: Path, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from edgegen.train.runs import load_run
    r = load_run(run)
    g = r.modules["generator"].eval()
    labels = np.arange(n) % 10
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        z = torch.randn(n, r.config.model.latent_dim, generator=gen)
        x = g(z, torch.from_numpy(labels))
    return x.numpy(), labels


def score(images: np.ndarray, labels: np.ndarray) -> dict:
    from edgegen.train import quality
    from edgegen.train.evaluator import _digits, get_evaluator
    ev = get_evaluator(progress=False)
    train, test = _digits("train"), _digits("test")
    pick = np.sort(np.random.default_rng(0).choice(len(train.images), size=min(len(images), len(train.images)),
                                                   replace=False))
    out = {"n": len(images), "fid": ev.fid(images), "accuracy": ev.accuracy(images, labels)}
    out.update(quality.report(ev.features(images), labels, ev.features(test.images), test.labels,
                              ev.features(train.images[pick]), train.labels[pick],
                              images, train.images, test.images))
    out["diversity"].pop("per_class", None)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--grid", type=Path, help="write a 10x10 sample grid (a column per label) of the first run")
    p.add_argument("--pairs", type=Path, help="write the closest sample/training pairs of the first run")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    for i, run in enumerate(a.runs):
        images, labels = sample_run(run, a.n, a.seed)
        s = score(images, labels)
        print(json.dumps({"run": str(run), **s}))
        if i == 0 and a.grid:
            from edgegen.images import save_grid
            save_grid(a.grid, images[:100], nrow=10)
        if i == 0 and a.pairs:
            from edgegen.train import quality
            from edgegen.train.evaluator import _digits
            train = _digits("train").images
            quality.closest_pairs_png(a.pairs, images, train, quality.memorization(images, train, _digits("test").images))
    return 0


if __name__ == "__main__":
    sys.exit(main())
