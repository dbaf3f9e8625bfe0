"""The latent text-to-image pipeline natively (issue 17): native vs Python openvino on an LDM bundle.

Eight prompts (the bundle's label prompts, cycled), one seed, the bundle's default sampler and
guidance, batch 8, one OpenVINO thread per runtime. Reports the max abs difference of the images,
and ms per sample (best of --repeat calls after a warm-up that compiles the static batches), plus
image-to-image (strength 0.6) and inpainting (right half) the same way.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/native_ldm.py bundles/ldm-small [--repeat 3]

Prints a Markdown table with the machine (CPU model, cores, load average). Needs `make native`.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    from edgegen.runtimes.api import Pipeline, open_manifest
    from edgegen.train.data import load_images
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    m = open_manifest(args.bundle)
    prompts = [m.stage("condition")["label_prompts"][i % 10] for i in range(8)]
    pipes = {b: Pipeline(m, b, threads=1) for b in ("openvino", "native")}
    c, h, w = m.sample_shape
    source = m.data["data"].get("source", "digits")
    try:
        image = load_images(source, "test", h).images[0]
    except Exception:  # noqa: BLE001 - any image of the right size will do for timing and parity
        image = np.zeros((c, h, w), np.float32)
    mask = np.zeros((h, w), np.float32)
    mask[:, w // 2:] = 1
    cases = {"text-to-image": {}, "image-to-image 0.6": dict(init_image=image, strength=0.6),
             "inpainting": dict(init_image=image, mask=mask)}
    rows = []
    for name, edit in cases.items():
        out, ms = {}, {}
        for b, pipe in pipes.items():
            pipe.sample(8, seed=args.seed, prompt=prompts, batch_size=8, **edit)  # warm-up
            best = float("inf")
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                out[b] = pipe.sample(8, seed=args.seed, prompt=prompts, batch_size=8, **edit)
                best = min(best, time.perf_counter() - t0)
            ms[b] = 1000 * best / 8
        rows.append((name, float(np.abs(out["native"] - out["openvino"]).max()), ms["openvino"], ms["native"]))
    load = os.getloadavg()
    print(f"{args.bundle}: {m.stage('generator')['defaults']}, 8 prompts, seed {args.seed}, batch 8, best of "
          f"{args.repeat}; {cpu_model()}, {os.cpu_count()} cores, load average {load[0]:.1f} {load[1]:.1f}")
    print("| case | max abs diff native vs openvino | openvino (Python) ms/sample | native ms/sample |")
    print("|---|---|---|---|")
    for name, diff, py, nat in rows:
        print(f"| {name} | {diff:.2e} | {py:.1f} | {nat:.1f} |")


if __name__ == "__main__":
    main()
