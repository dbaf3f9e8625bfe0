"""Measure the VQ-VAE + prior and DALL-E style bundles: quality on every backend, parity, speed.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/vq_dalle.py \
        --vq bundles/vqvae-small --dalle bundles/dalle-small --n 500 --out benchmarks/vq_dalle

writes OUT.json (everything) and OUT.md (tables). Scores use the digit evaluator (class accuracy
and digit-FID against the test split, with reference FIDs); DALL-E prompts use held-out templates
(and, for comparison, the training template of sample-by-label).
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from edgegen.manifest import read_manifest
from edgegen.paths import atomic_write_text
from edgegen.runtimes.api import Pipeline
from edgegen.runtimes.backends import available_backends
from edgegen.train.evaluate import evaluate_pipeline
from edgegen.train.evaluator import get_evaluator

BACKENDS = ("torch", "onnxruntime", "openvino")


def measure(bundle: Path, n: int, seed: int, sweep: list[dict], ev) -> dict:
    m = read_manifest(bundle)
    out = {"bundle": str(bundle), "family": m.family, "training": m.data["training"]["stats"],
           "parity": json.loads((bundle / "verify.json").read_text()), "backends": {}, "sweep": []}
    for name in BACKENDS:
        reason = available_backends().get(name)
        if reason:
            out["backends"][name] = {"skipped": reason}
            continue
        scores, _ = evaluate_pipeline(Pipeline(m, name), n=n, seed=seed, progress=True, evaluator=ev)
        out["backends"][name] = scores
        print(f"{bundle.name} {name}: accuracy {scores['accuracy']:.3f} FID {scores['fid']:.2f} "
              f"recon accuracy {scores['reconstruction']['accuracy']:.3f}")
    for kw in sweep:  # sampling settings, on onnxruntime
        scores, _ = evaluate_pipeline(Pipeline(m, "onnxruntime"), n=n, seed=seed, progress=False, evaluator=ev, **kw)
        out["sweep"].append({"settings": kw, "accuracy": scores["accuracy"], "fid": scores["fid"]})
        print(f"{bundle.name} {kw}: accuracy {scores['accuracy']:.3f} FID {scores['fid']:.2f}")
    if m.sampling["condition"] == "text":  # the training template, for comparison with held-out ones
        pipe = Pipeline(m, "onnxruntime")
        labels = np.arange(n) % 10
        images = pipe.sample(n, seed=seed, labels=labels)
        s = ev.score(images, labels)
        out["training_template"] = {"prompt_of_label": m.sampling["label_prompts"][7], "accuracy": s["accuracy"],
                                    "fid": s["fid"]}
    return out


def markdown(results: dict) -> str:
    lines = ["# VQ-VAE + prior and DALL-E style: measured", "",
             f"Measured {results['date']} on {results['machine']}, "
             f"{results['n']} samples per backend, seed {results['seed']}, one CPU thread.", "",
             "Command: `" + results["command"] + "`", ""]
    for key, r in results["models"].items():
        t = r["training"]
        lines += [f"## {key}: `{r['bundle']}`", ""]
        vq = t["vq"]["test"]
        step = "prior" if "prior" in t else "transformer"
        lines += [f"Training: VQ-VAE {t['vq']['steps']} steps ({t['vq']['seconds']:.0f} s), {step} "
                  f"{t[step]['steps']} steps ({t[step]['seconds']:.0f} s, {t[step]['parameters']} parameters); "
                  f"test NLL per image token "
                  f"{t[step].get('test_nll_per_code', t[step].get('test_nll_per_code_held_out_templates')):.3f} nats.",
                  "", "| backend | class accuracy | digit-FID | reconstruction accuracy | recon MSE | codebook in use "
                  "| perplexity | dead codes | ms / sample |", "|---|---|---|---|---|---|---|---|---|"]
        for name, s in r["backends"].items():
            if "skipped" in s:
                lines.append(f"| {name} | skipped: {s['skipped']} | | | | | | | |")
                continue
            rc = s["reconstruction"]
            lines.append(f"| {name} | {s['accuracy']:.3f} | {s['fid']:.2f} | {rc['accuracy']:.3f} | {rc['mse']:.4f} | "
                         f"{rc['codes_used']}/{rc['codebook_size']} ({rc['usage']:.0%}) | {rc['perplexity']:.1f} | "
                         f"{rc['dead_codes']} | {s['latency']['per_sample_ms']:.1f} |")
        first = next(s for s in r["backends"].values() if "skipped" not in s)
        refs = first["references"]
        lines += ["", f"Samples: {first['prompts']}, {first['plan']}. Real test images are classified "
                  f"{first['reconstruction']['real_accuracy']:.3f} right; the VQ stage's own test report: "
                  f"MSE {vq['recon_mse']:.4f}, {vq['codes_used']}/{vq['codebook_size']} codes, "
                  f"perplexity {vq['perplexity']:.1f}.", "",
                  f"digit-FID references (test split): real train images {refs['fid_train_vs_test']:.2f} (all), "
                  f"{refs['fid_train_same_n_vs_test']:.2f} ({refs['same_n']} images, as many as generated); "
                  f"uniform noise {refs['fid_noise_vs_test']:.2f}.", ""]
        if "training_template" in r:
            tt = r["training_template"]
            lines += [f"For comparison, the training template (\"{tt['prompt_of_label']}\" for 7): accuracy "
                      f"{tt['accuracy']:.3f}, digit-FID {tt['fid']:.2f} (onnxruntime).", ""]
        if r["sweep"]:
            lines += ["Sampling settings (onnxruntime):", "", "| settings | class accuracy | digit-FID |", "|---|---|---|"]
            lines += [f"| {json.dumps(s['settings'])} | {s['accuracy']:.3f} | {s['fid']:.2f} |" for s in r["sweep"]]
            lines.append("")
        lines += ["KV-cache parity gate (fp32; bounds 1e-4):", "",
                  "| role | format | single call | 20-decode logits | greedy tokens = torch without cache | passed |",
                  "|---|---|---|---|---|---|"]
        for role, per in r["parity"]["results"].items():
            for fmt, g in per.items():
                g = g["fp32"]
                greedy = (f"{g['greedy_matches_torch_no_cache']} ({g['greedy_tokens']} tokens; torch with cache: "
                          f"{g['torch_greedy_with_cache_matches_no_cache']})" if "greedy_tokens" in g else "")
                lines.append(f"| {role} | {fmt} | {g['single_call_max_abs']:.2e} | {g['trajectory_max_abs']:.2e} "
                             f"({g['trajectory']}) | {greedy} | {g['passed']} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vq", default="bundles/vqvae-small")
    ap.add_argument("--dalle", default="bundles/dalle-small")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/vq_dalle")
    args = ap.parse_args()
    ev = get_evaluator(progress=True)
    sweep = [{"temperature": 1.0}, {"temperature": 1.0, "top_k": 8}, {"temperature": 0.8},
             {"temperature": 1.0, "top_p": 0.9}]
    results = {"date": time.strftime("%Y-%m-%d", time.gmtime()), "machine": f"{platform.machine()} "
               f"{platform.processor() or ''}".strip(), "n": args.n, "seed": args.seed,
               "command": f"python benchmarks/vq_dalle.py --vq {args.vq} --dalle {args.dalle} --n {args.n}",
               "models": {}}
    for key, path in (("vqvae", args.vq), ("dalle", args.dalle)):
        if path and Path(path).exists():
            results["models"][key] = measure(Path(path), args.n, args.seed, sweep, ev)
    atomic_write_text(Path(args.out + ".json"), json.dumps(results, indent=1, default=float))
    atomic_write_text(Path(args.out + ".md"), markdown(results))
    print(f"wrote {args.out}.json and {args.out}.md")


if __name__ == "__main__":
    main()
