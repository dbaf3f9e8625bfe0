"""The acceptance figures of issue 15 for a latent text-to-image bundle (the small LDM on fashion).

    .venv/bin/python -m edgegen.train.ldm_eval bundles/ldm-small --out docs/notes/ldm-small-figures.json

- text to image: n samples from held-out-template prompts (labels 0..9 cycled), DDIM-50 at the
  bundle's default guidance: prompt accuracy (the evaluator's class == the prompt's class) and
  fashion-FID with the real (train vs test, same-n) and noise references;
- diversity (precision/recall, density/coverage, spread) and memorization of the text-to-image
  samples, from the evaluator's ``score`` as for every family;
- the same seed on torch, onnxruntime and openvino: max abs difference of the samples;
- the autoencoder alone: test MSE and the evaluator's accuracy on reconstructions;
- image-to-image on test images: at strength 0.3 the fraction whose class is kept (the label, and
  the evaluator's reading of the input), with a prompt of the image's own class and of another class; at 0.8 with a prompt of
  another class, the fraction that follows the prompt;
- inpainting with the right half masked and a prompt of the image's own class: accuracy, and
  whether every unmasked pixel equals the input.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from edgegen.paths import atomic_write_text
from edgegen.runtimes.api import open_pipeline
from edgegen.train.evaluator import evaluator_for
from edgegen.train.ldm_captions import caption_set


def _prompts(caps, labels: np.ndarray, seed: int, held_out: bool = True) -> list[str]:
    return caps.random_captions(labels, seed, held_out=held_out)


def acceptance(bundle: Path, backend: str = "onnxruntime", n: int = 500, n_edit: int = 200, seed: int = 0,
               batch_size: int = 100) -> dict:
    pipe = open_pipeline(bundle, backend)
    m = pipe.manifest
    caps = caption_set(m.data["data"]["source"])
    ev = evaluator_for(m.data["data"]["source"], m.sample_shape, progress=False)
    out: dict = {"bundle": str(bundle), "backend": backend}

    t0 = time.time()
    labels = np.arange(n) % 10
    images = pipe.sample(n, seed=seed, prompt=_prompts(caps, labels, 99), sampler="ddim", steps=50,
                         batch_size=batch_size)
    scored = ev.score(images, labels)  # FID, accuracy, references, diversity and memorization (issue 21)
    refs = scored["references"]
    out["text_to_image"] = {
        "n": n, "sampler": "ddim-50", "guidance": pipe.generator.guidance(None),
        "prompt_accuracy": scored["accuracy"], "fid": scored["fid"],
        "fid_real_same_n": refs["fid_train_same_n_vs_test"],
        "fid_real_train_vs_test": refs["fid_train_vs_test"], "fid_noise": refs["fid_noise_vs_test"],
        "evaluator_test_accuracy": refs["test_accuracy"], "seconds": time.time() - t0,
        "diversity": scored["diversity"], "memorization": scored["memorization"]}

    few = {b: open_pipeline(bundle, b).sample(8, seed=seed + 1, prompt=_prompts(caps, np.arange(8), 5), steps=50)
           for b in ("torch", "onnxruntime", "openvino")}
    out["backends_max_abs_vs_torch"] = {b: float(np.abs(few[b] - few["torch"]).max()) for b in few}

    test = ev.split("test")
    out["vae_reconstruction"] = _reconstruction(pipe, ev, test.images[:1000], test.labels[:1000], batch_size)
    k = min(n_edit, len(test.images))
    x, y = test.images[:k], test.labels[:k]
    seen = ev.predict(x)  # the class the evaluator reads in each input image
    other = (y + 1 + np.random.default_rng(1).integers(0, 9, size=k)) % 10  # never the image's class
    prompts = {"other": _prompts(caps, other, 7), "own": _prompts(caps, y, 7)}
    for strength, kinds in ((0.3, ("own", "other")), (0.8, ("other",))):
        fig = {"n": k}
        for kind in kinds:
            pred = ev.predict(pipe.sample(k, seed=seed, prompt=prompts[kind], init_image=x, strength=strength,
                                          batch_size=batch_size))
            fig[f"input_class_kept_{kind}_prompt"] = float(np.mean(pred == y))
            # the same against the evaluator's reading of the input: what the edit changed, not the
            # evaluator's own errors on the test images
            fig[f"input_prediction_kept_{kind}_prompt"] = float(np.mean(pred == seen))
            if kind == "other":
                fig["follows_other_prompt"] = float(np.mean(pred == other))
        out[f"img2img_strength_{strength:g}"] = fig
    mask = np.zeros(m.sample_shape[1:], np.float32)
    mask[:, mask.shape[1] // 2:] = 1.0
    # one call per image: the mask is shared, the init image is per sample
    got = pipe.sample(k, seed=seed, prompt=_prompts(caps, y, 8), init_image=x, mask=mask, batch_size=batch_size)
    keep = np.broadcast_to(mask == 0, got.shape)
    out["inpaint_right_half"] = {"n": k, "accuracy_own_class_prompt": float(np.mean(ev.predict(got) == y)),
                                 "unmasked_pixels_equal_input": bool(np.array_equal(got[keep], x[keep]))}
    return out


def _reconstruction(pipe, ev, x: np.ndarray, y: np.ndarray, batch_size: int) -> dict:
    """The autoencoder alone (encoder stage, then decoder stage, through the bundle's backend):
    test MSE and how often the evaluator gets the reconstructions right, next to the originals."""
    from edgegen.runtimes.stages import RoleStage
    enc = pipe.manifest.stage("encoder")
    rec = pipe.decoder(RoleStage(enc, pipe._get(enc["role"]), direction="encode")(x, batch_size), batch_size)
    return {"n": len(x), "test_mse": float(np.mean((rec - x) ** 2)),
            "accuracy": float(np.mean(ev.predict(rec) == y)), "accuracy_originals": float(np.mean(ev.predict(x) == y))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--n-edit", type=int, default=200)
    ap.add_argument("--out", default=None, help="write the figures here as JSON")
    args = ap.parse_args(argv)
    figures = acceptance(Path(args.bundle), args.backend, args.n, args.n_edit)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out:
        atomic_write_text(Path(args.out), text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
