"""Measure the score SDE, flow matching and DCGAN families: train (if the run is missing),
export to ONNX + OpenVINO through the parity gate, sample on onnxruntime, score.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/families.py [--only flow-small,sde-small,...] [--n 500]

Digits models are scored by the digit evaluator (class accuracy of label-conditioned
samples, digit-FID against the test split next to the real-data and noise references);
moons models by the sliced Wasserstein distance to fresh moons next to that of a second
fresh sample of the same size, with a scatter plot. Results are merged into
benchmarks/families.json after every item and rendered to benchmarks/families.md.
Training uses one thread (--train.threads 1): the machine is shared, see the notes there.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "families.json"

FIXED = {"corrector": "fixed"}  # the pc corrector rule for 2-D data (runtimes/sde_plans.py)
# name -> (family, preset, config overrides, [(sampler, steps, options)])
ITEMS = {
    "flow-small": ("flow", "small", {}, [("rk4", 20, {}), ("euler", 50, {}), ("heun", 25, {})]),
    "sde-small": ("sde", "small", {}, [("pc", 100, {}), ("pf_heun", 50, {})]),
    "gan-small": ("gan", "small", {}, [("gan", 1, {})]),
    "flow-moons": ("flow", "moons", {}, [("rk4", 20, {}), ("euler", 50, {})]),
    "sde-moons": ("sde", "moons", {}, [("pc", 200, FIXED), ("pc", 200, {}), ("pf_heun", 100, {}), ("em", 200, {})]),
    "sde-moons-ve": ("sde", "moons", {"sde": {"kind": "ve"}, "sampling": {"eps": 1e-5}},
                     [("pc", 200, FIXED), ("pc", 200, {}), ("pf_heun", 100, {}), ("em", 200, {})]),
    "sde-moons-ssm": ("sde", "moons", {"objective": "ssm"}, [("pc", 200, FIXED), ("pc", 200, {}), ("pf_heun", 100, {})]),
}


def _apply(cfg, overrides: dict):
    for section, values in overrides.items():
        if isinstance(values, dict):
            for k, v in values.items():
                setattr(getattr(cfg, section), k, v)
        else:
            setattr(cfg, section, values)
    return cfg


def ensure_run(name: str, family: str, preset: str, overrides: dict) -> Path:
    from edgegen.errors import EdgegenError
    from edgegen.train.families import get_preset
    from edgegen.train.runs import load_run, train_run
    run = Path("runs") / name
    try:
        load_run(run)
        return run
    except EdgegenError:
        pass
    cfg = _apply(get_preset(family, preset), overrides)
    cfg.train.threads = 1
    print(f"[bench] training {name}", flush=True)
    return train_run(family, cfg, run, progress=True)


def ensure_bundle(run: Path) -> tuple[Path, dict]:
    from edgegen.train.runs import export_run as export_bundle
    bundle = Path("bundles") / run.name
    if (bundle / "manifest.json").is_file():
        return bundle, json.loads((bundle / "verify.json").read_text())
    print(f"[bench] exporting {run} -> {bundle}", flush=True)
    return bundle, export_bundle(run, ["onnx", "openvino"], bundle, progress=False)


def score(name: str, bundle: Path, samplers, n: int) -> list[dict]:
    from edgegen.train.evaluate import evaluate_pipeline
    from edgegen.runtimes.api import Pipeline
    from edgegen.manifest import read_manifest
    from edgegen.train.moons_eval import FRESH_SEED, scatter_png, score_points
    from edgegen.train.data import sample_moons
    manifest = read_manifest(bundle)
    pipe = Pipeline(manifest, "onnxruntime")
    rows = []
    for sampler, steps, opts in samplers:
        print(f"[bench] {name}: {sampler}-{steps}", flush=True)
        if manifest.data["data"]["source"] == "moons":
            m = 2000
            t0 = time.perf_counter()
            points = pipe.sample(m, seed=0, sampler=sampler, steps=steps, batch_size=1000, **opts)
            s = score_points(points, manifest.data["data"].get("noise", 0.05))
            s["seconds"] = time.perf_counter() - t0
            s["plan"] = pipe.plan(sampler, steps, **opts).key
            png = HERE / "moons" / f"{name}-{s['plan']}.png"
            png.parent.mkdir(exist_ok=True)
            scatter_png(png, points, sample_moons(m, FRESH_SEED, manifest.data["data"].get("noise", 0.05)))
            s["png"] = str(png.relative_to(HERE))
        else:
            s, _ = evaluate_pipeline(pipe, n=n, seed=0, sampler=sampler, steps=steps, batch_size=250,
                                     progress=False)
            s["seconds"] = s["latency"]["seconds"]
        s["network_calls_per_sample"] = sum(1 for _ in pipe.plan(sampler, steps, **opts).steps)
        rows.append(s)
    return rows


def free_core_times() -> str:
    """' (sde 6.9, flow 7.0 min)' from benchmarks/train_time.json, or '' when it was not run."""
    path = HERE / "train_time.json"
    if not path.is_file():
        return ""
    rows = json.loads(path.read_text())["rows"]
    return " (" + ", ".join(f"{r['family']} {r['full_preset_seconds'] / 60:.1f}" for r in rows) + " min)"


def render(results: dict) -> str:
    lines = ["# Score SDE, flow matching and DCGAN: measured quality", "",
             "Produced by `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/families.py` (results in",
             "`families.json`). Sampling ran on onnxruntime (CPU) from the exported bundle, seed 0.",
             "Training used one thread on a 2-core machine shared with three other jobs, so the",
             "training times are upper bounds (wall clock under contention); on 2 free cores see",
             f"`train_time.md`{free_core_times()}.", "",
             "## Digits (small presets; label-conditioned samples, labels 0..9 cycled)", "",
             "| model | train steps | train time | parameters | plan | network calls | class accuracy | digit-FID | FID real (same n) | FID noise | sampling s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    moons = ["", "## Moons (2-D MLP variants; 2000 samples vs fresh moons)", "",
             "Fresh moons are i.i.d. draws (`train/data.py: sample_moons`); the floor is the median SW of 8",
             "second fresh samples to the fresh one. make_moons sets are stratified (angles on a grid);",
             "their mutual SW, the last column, is a floor that even exact i.i.d. moons only reach at a",
             "median ratio of about 2 (see the README).", "",
             "| model | objective / SDE | train steps | train time | plan | network calls | SW to fresh | SW floor (i.i.d.) | ratio (<= 2 passes) | scatter | make_moons floor |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    parity = ["", "## Parity gate (verify.json; fp32 bounds: single call <= 1e-4, trajectory <= 1e-3)", "",
              "| model | role | format | single call max abs | trajectory | trajectory max abs | passed |",
              "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        st = r["train"]
        for s in r["scores"]:
            if "accuracy" in s:
                refs = s["references"]
                lines.append(f"| {name} | {st['steps']} | {st['seconds'] / 60:.1f} min | {st['parameters'] / 1e6:.2f} M | "
                             f"{s['plan']} | {s['network_calls_per_sample']} | {s['accuracy']:.3f} | {s['fid']:.2f} | "
                             f"{refs['fid_train_same_n_vs_test']:.2f} | {refs['fid_noise_vs_test']:.1f} | "
                             f"{s['seconds']:.0f} |")
            else:
                moons.append(f"| {name} | {r['objective']} | {st['steps']} | {st['seconds'] / 60:.1f} min | {s['plan']} | "
                             f"{s['network_calls_per_sample']} | {s['sw']:.4f} | {s['sw_fresh']:.4f} | "
                             f"{s['ratio']:.2f} | [png]({s['png']}) | {s.get('sw_fresh_make_moons', float('nan')):.4f} |")
        for role, per in r["verify"]["results"].items():
            for fmt, v in per.items():
                v = v["fp32"]
                parity.append(f"| {name} | {role} | {fmt} | {v['single_call_max_abs']:.2e} | {v['trajectory']} | "
                              f"{v['trajectory_max_abs']:.2e} | {v['passed']} |")
    return "\n".join(lines + moons + parity) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(ITEMS), help="comma list of items")
    p.add_argument("--n", type=int, default=500, help="digits samples per plan")
    args = p.parse_args()
    from edgegen.paths import atomic_write_text
    from edgegen.train.runs import load_run
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    for name in [s.strip() for s in args.only.split(",") if s.strip()]:
        family, preset, overrides, samplers = ITEMS[name]
        run = ensure_run(name, family, preset, overrides)
        loaded = load_run(run)
        bundle, verify = ensure_bundle(run)
        objective = ""
        if family == "sde":
            objective = f"{loaded.config.objective} / {loaded.config.sde.kind}"
        elif family == "flow":
            objective = f"CFM, sigma_min {loaded.config.path.sigma_min:g}"
        results[name] = {"family": family, "preset": preset, "overrides": overrides, "objective": objective,
                         "train": loaded.stats, "verify": verify, "scores": score(name, bundle, samplers, args.n),
                         "load_average_1_5_15": list(os.getloadavg())}  # 2 cores: > 2 means contention
        atomic_write_text(RESULTS, json.dumps(results, indent=1, default=float))
        atomic_write_text(HERE / "families.md", render(results))
        print(f"[bench] {name} done", flush=True)


if __name__ == "__main__":
    main()
