"""Quality vs steps of the fast samplers on edgegen's small DDPM (digits): DDIM, DPM-Solver++(2M),
UniPC (bh2) and Euler ancestral, all compiled from the run's own schedule (runtimes/diffusers_plans.py).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fast_samplers.py [--run runs/ddpm-small] [--n 500]

Samples in PyTorch straight from the run folder through the plan interpreter (the same plans
every runtime executes; no export, so it runs while the exporters change), labels cycling 0..9
as `edgegen eval` does, seed 0, and scores class accuracy and digit-FID with the digit evaluator.
Writes the rows to /tmp/fast_samplers.json as they come and renders benchmarks/fast_samplers.md,
which keeps the raw results in a comment at its end (``--render-only`` re-renders from there).

Latency (``--latency``, one run for every row, so the rows compare): each (sampler, steps) of the
table sampled from the exported bundle (default bundles/ddpm-small, opened read-only) on onnxruntime
with one thread, ms per sample at batch 1 and batch 16, the median of ``--repeats`` timed runs after a
warm-up; then benchmarks/fast_samplers.png plots FID against those latencies.

The small LDM (a prompt-conditioned latent bundle, opened read-only; the same table, scores and plot):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fast_samplers.py --bundle bundles/ldm-small [--n 500]

samples the exported bundle on onnxruntime (one thread) at its default guidance, prompts from the
held-out caption templates (labels 0..9 cycled, as train/ldm_eval.py), scores prompt accuracy and
fashion-FID with the bundle's evaluator, every sampler at every step count (50 included), then times
every row at batch 1 and 16 as above (``--no-latency`` leaves that out), from the pipeline already
loaded (the same bundle even if the folder is replaced meanwhile). Writes benchmarks/fast_samplers_ldm.json
(the raw rows, written as they come), .md and .png (``--out-dir`` elsewhere). ``--add S:K,...`` adds rows
and ``--latency`` re-times every row; both refuse a bundle whose manifest changed since the rows.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SAMPLERS = ("ddim", "dpmpp_2m", "unipc", "euler_ancestral")
STEPS = (5, 8, 10, 12, 15, 20, 50)
RAW = "<!-- raw results (fast_samplers.py --render-only reads them):"


# CPU flags that matter for these kernels (the rest of /proc/cpuinfo's list is left out)
FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8", "avx_vnni")


def machine() -> dict:
    info = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
                 platform.processor())
    flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), [])
    return {"cpu": model, "flags": [f for f in FLAGS if f in flags], "cores": os.cpu_count(),
            "load_before": os.getloadavg(), "threads": int(os.environ.get("OMP_NUM_THREADS", "0") or 0)}


# what differs between the two tables: the words, the files
KINDS = {
    "ddpm": {"model": "Small DDPM (digits)", "fid": "digit-FID", "accuracy": "Class accuracy",
             "samples": "samples", "stem": "fast_samplers", "steps": STEPS,
             "headline": ("accuracy", "fid"), "headline_words": "samples clamped to [-1, 1]"},
    # the LDM's decoder overshoots the data range (a third of the values of the small LDM's images): its
    # headline is the raw images, as train/ldm_eval.py and `edgegen eval` score them
    "ldm": {"model": "Small LDM (fashion, prompts)", "fid": "fashion-FID", "accuracy": "Prompt accuracy",
            "samples": "images", "stem": "fast_samplers_ldm", "steps": (5, 8, 10, 15, 20, 50),
            "headline": ("accuracy_raw", "fid_raw"), "headline_words": "raw images, as ldm_eval scores them"},
}


class Outputs:
    """Where a table goes. DDPM: benchmarks/fast_samplers.md with the raw rows in a comment at its end
    (and /tmp/fast_samplers.json as they come); LDM: benchmarks/fast_samplers_ldm.json (the raw rows)
    and .md. Both get a .png once latency is measured. Every file is written to a temp file and renamed."""

    def __init__(self, kind: str, folder: Path = HERE):
        self.kind = kind
        stem = KINDS[kind]["stem"]
        self.md, self.png = folder / f"{stem}.md", folder / f"{stem}.png"
        self.json = folder / f"{stem}.json" if kind == "ldm" else Path("/tmp/fast_samplers.json")

    def load(self) -> dict:
        if self.kind == "ldm":
            if not self.json.exists():
                raise SystemExit(f"{self.json} not found: run the table first (without --render-only/--latency)")
            return json.loads(self.json.read_text())
        return json.loads(self.md.read_text().split(RAW, 1)[1].rsplit("-->", 1)[0])

    def save(self, res: dict) -> None:
        from edgegen.paths import atomic_write_text
        atomic_write_text(self.json, json.dumps(res, indent=1) + "\n")
        raw = "" if self.kind == "ldm" else f"\n{RAW}\n{json.dumps(res, indent=1)}\n-->"
        atomic_write_text(self.md, render(res) + raw + "\n")


def is_prompt_bundle(bundle: Path) -> bool:
    """True for a bundle whose condition stage takes prompts (the latent text-to-image family)."""
    m = json.loads((bundle / "manifest.json").read_text())
    return (m.get("pipeline", {}).get("condition") or {}).get("kind") == "prompt"


def request(manifest, labels: np.ndarray) -> dict:
    """The condition of a sample call for ``labels``: the labels themselves, or for a prompt bundle
    one prompt per label from the held-out caption templates (train/ldm_eval.py's prompts, seed 99)."""
    if (manifest.stage("condition") or {}).get("kind") != "prompt":
        return {"labels": labels}
    from edgegen.train.ldm_captions import caption_set
    return {"prompt": caption_set(manifest.data["data"]["source"]).random_captions(labels, 99, held_out=True)}


def measure_latency(bundle: Path, res: dict, repeats: int, batches=(1, 16), pipe=None) -> dict:
    """ms per sample of every default-option row's (sampler, steps) on onnxruntime, one thread, at
    each batch size: one warm-up call each, then ``repeats`` rounds that time every point once
    (interleaved, so a change in the shared machine's load spreads over all rows alike). Both the
    wall clock and the process's CPU time are kept (medians); on a machine shared with other jobs
    the CPU time is what the network costs, the wall clock adds the time spent waiting for a core."""
    import statistics
    from edgegen.runtimes.api import Pipeline, open_manifest
    pipe = pipe or Pipeline(open_manifest(bundle), "onnxruntime", threads=1)
    lat = {"bundle": str(bundle), "backend": "onnxruntime", "threads": 1, "repeats": repeats,
           "batches": list(batches), "machine": machine(), "rows": {}}
    todo = list(dict.fromkeys((r["sampler"], r["steps"]) for r in res["rows"] if "seed" not in r))
    points = [(sampler, k, b) for sampler, k in todo for b in batches]

    cond = {b: request(pipe.manifest, np.arange(b) % 10) for b in batches}

    def call(sampler, k, b):
        pipe.sample(b, seed=0, batch_size=b, sampler=sampler, steps=k, **cond[b])
    for p in points:  # warm-up
        call(*p)
    wall: dict = {p: [] for p in points}
    cpu: dict = {p: [] for p in points}
    for r in range(repeats):
        for p in points:
            t0, c0 = time.perf_counter(), time.process_time()
            call(*p)
            wall[p].append((time.perf_counter() - t0) * 1000 / p[2])
            cpu[p].append((time.process_time() - c0) * 1000 / p[2])
        print(f"round {r + 1}/{repeats} done, load {os.getloadavg()[0]:.1f}", flush=True)
    for sampler, k in todo:
        row = {}
        for b in batches:
            p = (sampler, k, b)
            row.update({f"b{b}_ms": statistics.median(wall[p]), f"b{b}_cpu_ms": statistics.median(cpu[p]),
                        f"b{b}_all_ms": [round(v, 3) for v in wall[p]],
                        f"b{b}_cpu_all_ms": [round(v, 3) for v in cpu[p]]})
        lat["rows"][f"{sampler}:{k}"] = row
    lat["machine"]["load_after"] = os.getloadavg()
    res["latency"] = lat
    return res


def plot(res: dict, png: Path) -> None:
    """FID (clamped samples) against ms per sample, one line per sampler, steps at the points."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    lat = res["latency"]
    rows = [r for r in res["rows"] if "seed" not in r and f"{r['sampler']}:{r['steps']}" in lat["rows"]]
    cpu = all(f"b{b}_cpu_ms" in v for v in lat["rows"].values() for b in lat["batches"])
    key, what = ("cpu_ms", "CPU time, median") if cpu else ("ms", "wall clock, median")
    fid_key = KINDS[res.get("kind", "ddpm")]["headline"][1]
    fig, axes = plt.subplots(1, len(lat["batches"]), figsize=(6 * len(lat["batches"]), 4.5), sharey=True)
    for ax, b in zip(np.atleast_1d(axes), lat["batches"]):
        for sampler in dict.fromkeys(r["sampler"] for r in rows):
            pts = sorted((lat["rows"][f"{r['sampler']}:{r['steps']}"][f"b{b}_{key}"], r[fid_key], r["steps"])
                         for r in rows if r["sampler"] == sampler)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=sampler)
            for x, y, k in pts:
                ax.annotate(str(k), (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):  # plain numbers on the log axes
            axis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
            axis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.set_xlabel(f"ms per sample, batch {b} ({what}; onnxruntime, 1 thread)")
        ax.grid(True, which="both", alpha=0.3)
    K = KINDS[res.get("kind", "ddpm")]
    np.atleast_1d(axes)[0].set_ylabel(f"{K['fid']} (lower is better)")
    np.atleast_1d(axes)[0].legend()
    m = lat["machine"]
    fig.suptitle(f"{K['model']}: FID vs latency, labels = steps. {m['cpu']}, {m['cores']} cores, "
                 f"load {m['load_before'][0]:.1f}", fontsize=9)
    fig.tight_layout()
    tmp = png.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(png)


def load(run: Path):
    import torch
    from edgegen.train.ddpm import sampling_info
    from edgegen.train.runs import load_run
    r = load_run(run)
    if r.family != "ddpm":
        raise SystemExit(f"{run} is a {r.family} run; this benchmark needs a DDPM run")
    denoiser = r.modules["denoiser"].eval()

    def net(x, t, y):
        with torch.no_grad():
            return denoiser(torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(y)).numpy()
    c, s = r.config.model.in_channels, r.config.model.image_size
    return net, sampling_info(r.config), (c, s, s)


def jobs(samplers, steps, fast_max: int | None = 20) -> list[tuple[str, int]]:
    """The reference (DDIM-50) first, then the fast samplers up to 20 steps, then the rest: a run cut
    short still answers the question. The fast samplers skip steps above ``fast_max`` (the DDPM table:
    20, they are meant for <= 20; None: every step count, after the rest)."""
    order = [("ddim", 50)] if "ddim" in samplers and 50 in steps else []
    for s in ("dpmpp_2m", "unipc", "ddim", "euler_ancestral"):
        if s in samplers:
            order += [(s, k) for k in steps if (s, k) not in order and (s == "ddim" or k <= (fast_max or 20))]
    if fast_max is None:
        order += [(s, k) for s in ("dpmpp_2m", "unipc", "euler_ancestral") if s in samplers
                  for k in steps if (s, k) not in order]
    return order + [(s, k) for s in samplers for k in steps if (s, k) not in order and s not in
                    ("dpmpp_2m", "unipc", "ddim", "euler_ancestral")]


def score_row(ev, images: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy and FID of the samples as written to an image (clamped to the data range [-1, 1], as
    every image writer and diffusers' postprocessing do) and of the raw samples (what `edgegen eval`
    scores), the share of raw values outside the range, and the same-n real-image FID floor."""
    c = ev.score(np.clip(images, -1, 1), labels)
    raw_in_range = bool(np.all(np.abs(images) <= 1))
    return {"accuracy": c["accuracy"], "fid": c["fid"],
            "accuracy_raw": c["accuracy"] if raw_in_range else ev.accuracy(images, labels),
            "fid_raw": c["fid"] if raw_in_range else ev.fid(images),
            "out_of_range": float(np.mean(np.abs(images) > 1)),
            "fid_real_same_n": c["references"].get("fid_train_same_n_vs_test")}


def add_row(results: dict, row: dict, out: "Outputs", seed: int = 0, options: dict | None = None) -> None:
    if seed != 0 or options:
        row.update({"seed": seed, "options": options or {}})
    results["rows"].append(row)
    print(json.dumps(row), flush=True)
    results["machine"]["load_after"] = os.getloadavg()
    out.save(results)


def measure(run: Path, n: int, todo: list[tuple[str, int]], out: "Outputs", seed: int = 0,
            options: dict | None = None, results: dict | None = None) -> dict:
    import torch
    from edgegen.runtimes.interpreter import run_plan
    from edgegen.runtimes.samplers import compile_plan
    from edgegen.train.evaluator import evaluator_for
    torch.set_num_threads(1)
    net, generator, shape = load(run)
    ev = evaluator_for("digits", shape, progress=False)
    labels = np.arange(n, dtype=np.int64) % 10
    results = results or {"run": str(run), "n": n, "seed": 0, "machine": machine(), "rows": []}
    for sampler, k in todo:
        plan = compile_plan(generator, sampler, k, **(options or {}))
        t0 = time.perf_counter()
        images = run_plan(plan, net, shape, labels, seed=seed, batch_size=250)
        seconds = time.perf_counter() - t0
        row = {"sampler": sampler, "steps": k, "plan": plan.key, "network_calls": len(plan.steps),
               **score_row(ev, images, labels), "seconds": seconds}
        add_row(results, row, out, seed, options)
    return results


def measure_bundle(bundle: Path, n: int, todo: list[tuple[str, int]], out: "Outputs",
                   batch_size: int = 100, results: dict | None = None) -> tuple[dict, object]:
    """The table from an exported bundle on onnxruntime (one thread), at its default guidance; a
    prompt bundle gets held-out-template prompts (request), scored against their labels. Returns the
    results and the pipeline (its files already loaded: the latency rows time the same bundle even if
    the folder is replaced meanwhile)."""
    import hashlib

    import torch
    from edgegen.runtimes.pipeline import Pipeline, open_manifest
    from edgegen.train.evaluator import evaluator_for
    torch.set_num_threads(1)  # the evaluator's CNN
    m = open_manifest(bundle)
    pipe = Pipeline(m, "onnxruntime", threads=1)
    ev = evaluator_for(m.data["data"]["source"], m.sample_shape, progress=False)
    labels = np.arange(n, dtype=np.int64) % 10
    cond = request(m, labels)
    gen = m.generator
    results = results or {"kind": "ldm", "bundle": str(bundle), "n": n, "seed": 0, "backend": "onnxruntime", "threads": 1,
               "batch_size": batch_size, "guidance": pipe.generator.guidance(None),
               "source": m.data["data"]["source"], "sample_shape": list(m.sample_shape),
               "latent_shape": gen.get("latent_shape"), "schedule": gen.get("schedule"),
               "bundle_created_utc": m.data.get("created_utc"),
               "manifest_sha256": hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest(),
               "machine": machine(), "rows": []}
    for sampler, k in todo:
        plan = pipe.plan(sampler, k)
        t0 = time.perf_counter()
        images = pipe.sample(n, seed=0, batch_size=batch_size, sampler=sampler, steps=k, **cond)
        seconds = time.perf_counter() - t0
        row = {"sampler": sampler, "steps": k, "plan": plan.key, "network_calls": len(plan.steps),
               **score_row(ev, images, labels), "seconds": seconds}
        add_row(results, row, out)
    return results, pipe


def seed_means(rows: list[dict]) -> list[str]:
    """Mean over seeds of each (sampler, steps) measured with more than one seed (default options):
    FID at n = 500 moves by ~20% between seeds, more than the 10% the target allows."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["sampler"], r["steps"]), []).append(r)
    multi = {k: v for k, v in groups.items() if len(v) > 1}
    ref = multi.get(("ddim", 50))
    if not ref:
        return []
    f0, a0 = np.mean([r["fid"] for r in ref]), np.mean([r["accuracy"] for r in ref])
    out = ["## Mean over seeds (default options)", "",
           "FID at n = 500 moves between noise seeds by more than the 10% the target allows (see DDIM-50's",
           "rows), so one seed cannot decide it; the mean over the seeds measured is the fairer test.", "",
           "| sampler | steps | seeds | accuracy (%) | FID | FID vs DDIM-50 | meets the target |", "|---|---|---|---|---|---|---|"]
    for (sampler, k), v in multi.items():
        f, a = np.mean([r["fid"] for r in v]), np.mean([r["accuracy"] for r in v])
        ok = "reference" if (sampler, k) == ("ddim", 50) else ("yes" if f <= 1.1 * f0 and a >= a0 - 0.01 else "no")
        out.append(f"| {sampler} | {k} | {len(v)} | {100 * a:.1f} | {f:.3f} | {100 * (f / f0 - 1):+.1f}% | {ok} |")
    return out + [""]


def latency_lines(res: dict, rows: list[dict]) -> list[str]:
    lat = res.get("latency")
    if not lat:
        return []
    m = lat["machine"]
    acc_key, fid_key = KINDS[res.get("kind", "ddpm")]["headline"]
    cpu = all(f"b{b}_cpu_ms" in v for v in lat["rows"].values() for b in lat["batches"])
    keys = [(f"b{b}_ms", f"ms/sample, batch {b}, wall") for b in lat["batches"]]
    keys += [(f"b{b}_cpu_ms", f"ms/sample, batch {b}, CPU") for b in lat["batches"]] if cpu else []
    cols = [c for _, c in keys]
    out = ["## Quality against latency", "",
           ("Latency: `--latency` (" if res.get("kind", "ddpm") == "ddpm" else "Latency, measured by the same "
            "command after the quality rows (`--latency` re-times them alone; ") + f"{lat['bundle']}, {lat['backend']}, {lat['threads']} thread, the whole pipeline "
           f"through the plan interpreter; median of {lat['repeats']} timed runs after a warm-up, every row in the "
           "same run, the rounds interleaved over the rows). Wall clock and the process's CPU time: on this shared "
           "machine the wall clock includes waiting for a core, so the CPU time is the steadier measure of "
           "what each sampler costs; the plot uses it.",
           f"Machine: {m['cpu']}, flags {' '.join(m['flags']) or 'none of ' + ', '.join(FLAGS)}, {m['cores']} cores; "
           f"load average {m['load_before'][0]:.1f} before, {m.get('load_after', m['load_before'])[0]:.1f} after "
           "(shared machine: absolute times are pessimistic, ratios within the table hold).", "",
           f"![FID against latency]({KINDS[res.get('kind', 'ddpm')]['stem']}.png)", "",
           "| sampler | steps | network calls | accuracy (%) | FID | " + " | ".join(cols) + " |",
           "|---|---|---|---|---|" + "---|" * len(cols)]
    for r in rows:
        L = lat["rows"].get(f"{r['sampler']}:{r['steps']}")
        if L is None:
            continue
        out.append(f"| {r['sampler']} | {r['steps']} | {r['network_calls']} | {100 * r[acc_key]:.1f} | "
                   f"{r[fid_key]:.2f} | " + " | ".join(f"{L[k]:.2f}" for k, _ in keys) + " |")
    return out + [""]


def header(res: dict) -> list[str]:
    m = res["machine"]
    return ["# Fast samplers on the small DDPM (digits): quality vs steps", "",
            "Produced by `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fast_samplers.py` "
            f"(raw rows at the end of this file): run `{res['run']}`, n = {res['n']} label-conditioned samples "
            "(labels 0..9 cycled), seed 0, PyTorch network through the plan interpreter, guidance 1.",
            f"Machine: {m['cpu']}, {m['cores']} cores, one thread; load average before "
            f"{m['load_before'][0]:.1f}, after {m.get('load_after', m['load_before'])[0]:.1f} (shared machine: "
            "seconds are wall clock under contention, compare them only within this table).", "",
            "Every sampler is compiled from the run's own schedule (linear betas, T = 1000). DDIM is",
            "edgegen's (eta 0); DPM-Solver++(2M), UniPC (bh2) and Euler ancestral are diffusers' schedulers on",
            "the equivalent config (runtimes/diffusers_plans.py: linspace timesteps, final sigma 0). All clip",
            "each x0 prediction to [-1, 1] (`clip_x0`, the bundle default). The fast samplers were not run at",
            "50 steps (DDIM-50 is the reference).", ""]


def header_ldm(res: dict) -> list[str]:
    m, sch = res["machine"], res.get("schedule") or {}
    latent = "x".join(map(str, res.get("latent_shape") or []))
    image = "x".join(map(str, res["sample_shape"]))
    return ["# Fast samplers on the small LDM (fashion, prompts): quality vs steps", "",
            f"Produced by `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fast_samplers.py --bundle {res['bundle']}"
            f"{'' if res['n'] == 500 else ' --n ' + str(res['n'])}` (raw rows: fast_samplers_ldm.json): bundle "
            f"`{res['bundle']}` (created {res.get('bundle_created_utc')}, manifest sha256 "
            f"{res['manifest_sha256'][:12]}), opened read-only, on {res['backend']} with {res['threads']} thread; "
            f"n = {res['n']} images, one prompt each from the held-out caption templates (labels 0..9 cycled, "
            "the templates drawn with seed 99 as train/ldm_eval.py does), noise seed 0, "
            f"guidance {res['guidance']:g} (the bundle's default), batch {res['batch_size']}.",
            f"Machine: {m['cpu']}, {m['cores']} cores, one thread; load average before "
            f"{m['load_before'][0]:.1f}, after {m.get('load_after', m['load_before'])[0]:.1f} (shared machine: "
            "seconds are wall clock under contention, compare them only within this table).", "",
            f"Every sampler is compiled from the bundle's own schedule ({sch.get('kind')} betas, T = {sch.get('T')}) "
            f"and runs on the {latent} latents; the VAE decoder makes the {image} images. DDIM is edgegen's "
            "(eta 0); DPM-Solver++(2M), UniPC (bh2) and Euler ancestral are diffusers' schedulers on the "
            "equivalent config (runtimes/diffusers_plans.py: linspace timesteps, final sigma 0). No x0 clipping "
            "(the bundle's `clip_x0` is false: latents have no fixed range). Prompt accuracy: the fashion "
            "evaluator's class of the image equals the prompt's class.", ""]


def render(res: dict) -> str:
    extra = [r for r in res["rows"] if "seed" in r]
    rows = [r for r in res["rows"] if "seed" not in r]
    ref = next((r for r in rows if r["sampler"] == "ddim" and r["steps"] == 50), None)
    kind = res.get("kind", "ddpm")
    K = KINDS[kind]
    acc_key, fid_key = K["headline"]
    lines = header(res) if kind == "ddpm" else header_ldm(res)
    steps = sorted({r["steps"] for r in rows})
    samplers = list(dict.fromkeys(r["sampler"] for r in rows))
    cell = {(r["sampler"], r["steps"]): r for r in rows}
    fid, smp = K["fid"][0].upper() + K["fid"][1:], K["samples"]
    tables = [(f"{K['accuracy']} (%), {smp} clamped to [-1, 1]", "accuracy", "{:.1f}"),
              (f"{fid} (lower is better), {smp} clamped to [-1, 1]", "fid", "{:.2f}"),
              (f"{fid} of the raw {smp} (what `edgegen eval` scores)", "fid_raw", "{:.2f}")]
    if kind == "ldm":  # the headline first: the raw images
        tables = [(f"{K['accuracy']} (%), raw {smp} (what `edgegen eval` and train/ldm_eval.py score)",
                   "accuracy_raw", "{:.1f}"), (f"{fid} (lower is better), raw {smp}", "fid_raw", "{:.2f}"),
                  *tables[:2]]
    tables += [(f"Share of raw {smp[:-1]} values outside [-1, 1] (%)", "out_of_range", "{:.2f}"),
               (f"Seconds for all {smp}", "seconds", "{:.0f}")]
    for title, key, fmt in tables:
        lines += [f"## {title}", "", "| sampler | " + " | ".join(f"{k} steps" for k in steps) + " |",
                  "|---|" + "---|" * len(steps)]
        for s in samplers:
            vals = []
            for k in steps:
                r = cell.get((s, k))
                v = None if r is None else (100 * r[key] if key.startswith(("accuracy", "out_of")) else r[key])
                vals.append("" if v is None else fmt.format(v))
            lines.append(f"| {s} | " + " | ".join(vals) + " |")
        lines.append("")
    if ref:
        lines += ["## Against DDIM-50 (seed 0 alone)", "",
                  f"DDIM-50: accuracy {100 * ref[acc_key]:.1f}%, FID {ref[fid_key]:.2f}"
                  + ("" if kind == "ddpm" else f" ({K['headline_words']})") + ". Target: DPM-Solver++(2M) or "
                  "UniPC within 1 point of accuracy and 10% of FID at 12 steps or fewer"
                  + ("." if kind == "ddpm" else " (issue 16's target for the small DDPM, applied here too)."), ""]
        for s in samplers:
            ok = [r["steps"] for r in rows if r["sampler"] == s and r[acc_key] >= ref[acc_key] - 0.01
                  and r[fid_key] <= 1.1 * ref[fid_key]]
            lines.append(f"- {s}: " + (f"meets it from {min(ok)} steps (also at: {', '.join(map(str, sorted(ok)))})"
                                      if ok else "does not meet it at any measured step count"))
        lines.append("")
    if extra:
        lines += ["## Other seeds and options (`--seed`, `--no-clip`)", "",
                  "| sampler | steps | seed | options | accuracy (%) | FID (clamped) | FID (raw) | outside [-1, 1] (%) |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in extra:
            lines.append(f"| {r['sampler']} | {r['steps']} | {r['seed']} | {r['options'] or ''} | "
                         f"{100 * r['accuracy']:.1f} | {r['fid']:.2f} | {r['fid_raw']:.2f} | {100 * r['out_of_range']:.2f} |")
        lines.append("")
    lines += latency_lines(res, rows)
    lines += seed_means(rows + [r for r in extra if not r["options"]])
    real = next((r["fid_real_same_n"] for r in rows if r.get("fid_real_same_n") is not None), None)
    if real is not None:
        lines += [f"FID floor: real training images at the same n against the test split score {real:.2f}.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, default=Path("runs/ddpm-small"))
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--samplers", default=",".join(SAMPLERS))
    p.add_argument("--steps", default=None, help="step counts, comma-separated (default: the DDPM table "
                   f"{','.join(map(str, STEPS))}; a prompt bundle {','.join(map(str, KINDS['ldm']['steps']))})")
    p.add_argument("--render-only", action="store_true", help="re-render the .md from the raw rows it holds")
    p.add_argument("--seed", type=int, default=0, help="with --add: another noise seed")
    p.add_argument("--no-clip", action="store_true", help="with --add: clip_x0=False")
    p.add_argument("--add", default="", help="SAMPLER:STEPS,... rows to add to the existing results")
    p.add_argument("--latency", action="store_true", help="time every row's (sampler, steps) on the exported "
                   "bundle (onnxruntime, batch 1 and 16) and plot FID against it")
    p.add_argument("--bundle", type=Path, default=None,
                   help="a prompt-conditioned latent bundle (bundles/ldm-small): the whole table from it, to "
                   "benchmarks/fast_samplers_ldm.*; for the DDPM table, the bundle --latency times "
                   "(default bundles/ddpm-small)")
    p.add_argument("--repeats", type=int, default=5, help="latency: timed runs per point (median)")
    p.add_argument("--no-latency", action="store_true", help="with a prompt bundle: the quality table only")
    p.add_argument("--out-dir", type=Path, default=HERE, help="with a prompt bundle: where the "
                   "fast_samplers_ldm.* files go (default benchmarks/)")
    a = p.parse_args(argv)
    if a.n < 2:
        raise SystemExit(f"--n must be at least 2 (FID needs two samples), got {a.n}")
    if a.bundle is not None and not (a.bundle / "manifest.json").is_file():
        raise SystemExit(f"bundle not found: {a.bundle} (no manifest.json)")
    if a.bundle is not None and is_prompt_bundle(a.bundle):
        return main_ldm(a)
    out = Outputs("ddpm")
    if a.latency:
        res = measure_latency(a.bundle or Path("bundles/ddpm-small"), out.load(), a.repeats)
        out.save(res)
        plot(res, out.png)
        return 0
    if a.render_only or a.add:
        res = out.load()
        if a.add:
            todo = [(j.split(":")[0], int(j.split(":")[1])) for j in a.add.split(",")]
            res = measure(Path(res["run"]), res["n"], todo, out, a.seed,
                          {"clip_x0": False} if a.no_clip else None, res)
        if res.get("latency"):
            plot(res, out.png)  # the FID column may have changed
    else:
        todo = jobs(a.samplers.split(","), [int(k) for k in (a.steps or ",".join(map(str, STEPS))).split(",")])
        res = measure(a.run, a.n, todo, out)
    out.save(res)
    return 0


def main_ldm(a) -> int:
    """The table of a prompt bundle: quality rows, then (unless --no-latency) their latency, the plot."""
    import hashlib
    if a.no_clip or a.seed:
        raise SystemExit("--seed and --no-clip are for the DDPM table (run folder), not a prompt bundle")
    a.out_dir.mkdir(parents=True, exist_ok=True)
    out = Outputs("ldm", a.out_dir)
    if a.render_only:
        res = out.load()
    elif a.latency or a.add:  # more rows or their latency, for the bundle of the existing rows
        res = out.load()
        if hashlib.sha256((a.bundle / "manifest.json").read_bytes()).hexdigest() != res["manifest_sha256"]:
            raise SystemExit(f"{a.bundle} is not the bundle of the quality rows in {out.json} (its manifest changed): "
                             "rerun the whole table")
        pipe = None
        if a.add:
            todo = [(j.split(":")[0], int(j.split(":")[1])) for j in a.add.split(",")]
            res, pipe = measure_bundle(a.bundle, res["n"], todo, out, res["batch_size"], res)
        if a.latency:  # every row again, in one run
            res = measure_latency(a.bundle, res, a.repeats, pipe=pipe)
    else:
        steps = KINDS["ldm"]["steps"] if a.steps is None else [int(k) for k in a.steps.split(",")]
        todo = jobs(a.samplers.split(","), steps, fast_max=None)
        res, pipe = measure_bundle(a.bundle, a.n, todo, out)
        if not a.no_latency:
            res = measure_latency(a.bundle, res, a.repeats, pipe=pipe)
        if hashlib.sha256((a.bundle / "manifest.json").read_bytes()).hexdigest() != res["manifest_sha256"]:
            res["bundle_replaced_during_run"] = True  # the figures are of the bundle opened at the start
            print(f"warning: {a.bundle} was replaced during the run; the figures are of the bundle opened at "
                  f"its start (manifest sha256 {res['manifest_sha256'][:12]})", flush=True)
    out.save(res)
    if res.get("latency"):
        plot(res, out.png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
