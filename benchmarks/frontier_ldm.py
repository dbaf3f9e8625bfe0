"""Time to quality on the small LDM (Fashion-MNIST, prompts): latency per sample of the whole
prompt -> image pipeline (text encoder, CFG denoiser loop, VAE decoder) at batch 1 and 16 against
fashion-FID and prompt accuracy, for edgegen's backends x precisions x samplers x steps and the
loops a user would write instead, all measured in one run.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/frontier_ldm.py            # make bench-frontier-ldm
    .venv/bin/python benchmarks/frontier_ldm.py --smoke                      # a quick check, under --work
    .venv/bin/python benchmarks/frontier_ldm.py --render-only                # re-render .md and .png

Bundle: bundles/ldm-small, read only; its variants are made in a copy under --work (default
/tmp/edgegen-frontier-ldm) by frontier.py's prepare(): OpenVINO bf16 on the denoiser
(calibration/precision_gate.py VARIANTS: the fp32 IR with the bf16 hint) and ONNX Runtime int8 of the
denoiser (``calibrate`` from prompt-conditioned trajectories, drift gate only: this benchmark scores
every configuration itself). The text encoder and VAE decoder stay fp32 (Pipeline's role precision).

Quality: n = 500 images, one prompt each from the held-out caption templates (labels 0..9 cycled,
templates drawn with seed 99: fast_samplers.request, as train/ldm_eval.py), noise seed 0, batch 100,
guidance 3 (the bundle's default), scored by the bundle's evaluator on the raw images (fashion-FID,
prompt accuracy; fast_samplers.score_row). The fp32 rows come from benchmarks/fast_samplers_ldm.json
when that is the same measurement (same bundle manifest sha256, n, seed, batch, guidance), else they
are scored here. OpenVINO fp32 and the torch DDIM loop compute the ONNX Runtime fp32 samples (max abs
difference recorded on the timed samples), so they share that quality; the diffusers loops are
scored on their own samples (diffusers' DDIM steps to t - T // N, not to edgegen's next timestep).
Latency: one thread everywhere, the prompts of the quality run, median of a few runs after a
warm-up, per sample. Budget: FID within 10% and prompt accuracy within 1 point of fp32 DDIM-50.
Verdict per batch from frontier.py's table()/verdict(); then the fastest edgegen configuration, the
diffusers DDIM-50 loop and the best peer within budget are timed again interleaved (the figures to
quote on a loaded machine). Other backends and precisions than ONNX Runtime fp32 are timed and scored on
reduced_plans() only (the candidates for the fastest configuration within budget), for time.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import fast_samplers as fs  # noqa: E402  (request, score_row: the LDM table's prompts and scores)
import frontier as fr  # noqa: E402  (Raw, machine, prepare, table, verdict, plot)

from edgegen.profiling.frontier import ACC_DROP_POINTS, FID_RISE, Budget, interleaved, plan_options, timed  # noqa: E402

PLANS = [("ddim", 50), ("ddim", 20), ("ddim", 10), ("dpmpp_2m", 10), ("dpmpp_2m", 5), ("unipc", 10), ("unipc", 5)]
HOST = [("onnxruntime", "fp32"), ("openvino", "fp32"), ("openvino", "bf16"), ("onnxruntime", "int8")]
QUALITY = [("openvino", "bf16"), ("onnxruntime", "int8")]  # + ("onnxruntime", "fp32") unless reused
# OpenVINO int8 (NNCF) left out: 1.3x over fp32 at batch 16 on this denoiser (docs/notes/issue-15-demo-int8.md),
# below the bf16 hint's, and its calibration and scoring would not fit the run's time
INT8_FORMATS = ("onnx",)
PEERS = [("diffusers-ort", "ddim", 50), ("diffusers-ort", "dpmpp_2m", 10), ("diffusers-ort", "dpmpp_2m", 5)]
# PyTorch eager (baselines_ldm.torch_eager, edgegen's DDIM on the torch weights) is in --smoke and --torch:
# on this loaded machine its DDIM-50 rows would not fit the run
BATCHES = (1, 16)
REPEATS = {1: 3, 16: 2}
ROUNDS = {1: 5, 16: 3}  # head-to-head
H2H_EDGEGEN = 3  # edgegen configurations in the head-to-head (the fastest within budget)
N, BATCH_Q, SEED = 500, 100, 0
REF = "ddim-50"
STEM = "frontier_ldm"
MAX_REDUCED_STEPS = 10  # reduced_plans
PEER_KINDS = ("diffusers-ort", "torch-eager", "torch-compile")
SAME = 1e-3  # a peer whose images are within this of edgegen's fp32 ones shares their quality
SKIP_PEER_QUALITY = {("ddim", 50)}  # the diffusers DDIM-50 loop is not scored (time): see render()
WORK = Path("/tmp/edgegen-frontier-ldm")
FP32_ROWS = HERE / "fast_samplers_ldm.json"


def configure() -> None:
    """frontier.py's shared functions read its globals: point them at this study."""
    fr.PLANS, fr.HOST, fr.QUALITY, fr.FUSED, fr.FUSED_OV_PLANS, fr.PEERS = PLANS, HOST, QUALITY, [], [], PEERS
    fr.BATCHES, fr.REPEATS, fr.REF, fr.THREADS = BATCHES, REPEATS, REF, 1
    fr.MODEL, fr.STEM, fr.DATA, fr.FID_NAME = "small LDM", STEM, "fashion, prompts", "fashion-FID"


def manifest_sha(bundle: Path) -> str:
    return hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest()


def prompts(m, n: int) -> tuple[np.ndarray, list[str]]:
    labels = np.arange(n, dtype=np.int64) % 10
    return labels, fs.request(m, labels)["prompt"]


def reused_fp32(bundle: Path, path: Path = FP32_ROWS, guidance: float = 3.0) -> tuple[dict, str]:
    """{plan: quality row} of fast_samplers_ldm.json when it is this measurement (same bundle manifest,
    n, seed, batch, backend, guidance), else ({}, the reason)."""
    if not path.exists():
        return {}, f"{path.name} not found"
    res = json.loads(path.read_text())
    want = {"manifest_sha256": manifest_sha(bundle), "n": N, "seed": SEED, "batch_size": BATCH_Q,
            "backend": "onnxruntime", "guidance": guidance}
    diff = [k for k, v in want.items() if res.get(k) != v]
    if diff:
        return {}, f"{path.name} differs in {', '.join(diff)}"
    rows = {}
    for r in res["rows"]:
        if "seed" in r:  # --add rows with another seed or options
            continue
        rows[f"{r['sampler']}-{r['steps']}"] = {"fid": r["fid_raw"], "accuracy": r["accuracy_raw"],
                                                "fid_clamped": r["fid"], "accuracy_clamped": r["accuracy"],
                                                "seconds": r["seconds"], "from": path.name}
    return rows, f"{path.name} (manifest sha256 {want['manifest_sha256'][:12]}, n {N}, seed {SEED})"


def quality_row(ev, images: np.ndarray, labels: np.ndarray, seconds: float) -> dict:
    """FID and prompt accuracy of the raw images: the evaluator calls fast_samplers.score_row makes for its
    fid_raw / accuracy_raw (the clamped scores and the diversity report are left out, for time)."""
    return {"fid": ev.fid(images), "accuracy": ev.accuracy(images, labels), "seconds": seconds}


def reduced_plans(rows: dict) -> list[tuple[str, int]]:
    """The plans scored and timed at a reduced precision or on another backend than ORT fp32: those within
    budget at fp32 with at most MAX_REDUCED_STEPS steps (the candidates for the fastest configuration within
    budget: a plan over budget at fp32, or slower than one within, cannot be it), fewest steps first; every
    plan without fp32 rows."""
    ref = rows.get(f"q/onnxruntime/fp32/{REF}")
    if ref is None:
        return list(PLANS)
    return sorted([(s, k) for s, k in PLANS if k <= MAX_REDUCED_STEPS and (q := rows.get(f"q/onnxruntime/fp32/{s}-{k}"))
                   and Budget().within(q, ref)], key=lambda p: p[1])


# -- measuring ------------------------------------------------------------------------------------
def quality(m, raw, ev) -> None:
    from edgegen.runtimes.api import Pipeline
    labels, ps = prompts(m, N)
    pipes: dict = {}
    todo = [(b, p, s, k) for b, p in fr.QUALITY if p == "fp32" for s, k in PLANS]
    todo += [(b, p, s, k) for s, k in reduced_plans(raw.data["rows"]) for b, p in fr.QUALITY if p != "fp32"]
    for backend, precision, sampler, steps in todo:  # the fastest candidates first: a run cut short still answers
        key = f"q/{backend}/{precision}/{sampler}-{steps}"
        if raw.has(key):
            continue
        pipe = pipes.get((backend, precision)) or pipes.setdefault((backend, precision),
                                                                    Pipeline(m, backend, precision, threads=1))
        t0 = time.perf_counter()
        images = pipe.sample(N, seed=SEED, batch_size=BATCH_Q, prompt=ps, **plan_options(sampler, steps))
        raw.put(key, quality_row(ev, images, labels, time.perf_counter() - t0))


def shared_peer_quality(raw) -> None:
    """A peer whose timed images are within SAME of edgegen's fp32 ones of the same plan at every batch
    shares that plan's fp32 quality row (diffusers' DPM-Solver++ is what edgegen's dpmpp_2m compiles;
    the torch loop computes edgegen's DDIM and gets its row in frontier.table)."""
    rows = merged(WORK)["rows"]
    for kind, sampler, steps in PEERS:
        key = f"q/peer/{kind}/{sampler}-{steps}"
        if kind != "diffusers-ort" or raw.has(key):
            continue
        diffs = [rows.get(f"t/peer/{kind}/{sampler}-{steps}/b{b}", {}).get("max_abs_vs_ort_fp32_host") for b in BATCHES]
        fp32 = rows.get(f"q/onnxruntime/fp32/{sampler}-{steps}")
        if fp32 and all(d is not None and d < SAME for d in diffs):
            raw.put(key, {"fid": fp32["fid"], "accuracy": fp32["accuracy"], "max_abs_vs_ort_fp32_host": max(diffs),
                          "shared_from": f"onnxruntime fp32 {sampler}-{steps}"})


def peer_quality(m, raw, ev) -> None:
    """The diffusers loops scored on their own images, unless they share edgegen's row (shared_peer_quality)
    or are in SKIP_PEER_QUALITY."""
    from edgegen.profiling import baselines
    labels, ps = prompts(m, N)
    shared_peer_quality(raw)
    for kind, sampler, steps in PEERS:
        key = f"q/peer/{kind}/{sampler}-{steps}"
        if kind != "diffusers-ort" or raw.has(key) or (sampler, steps) in SKIP_PEER_QUALITY:
            continue
        t0 = time.perf_counter()
        job = {"kind": kind, "bundle": str(m.root), "precision": "fp32", "batch": N, "sampler": sampler,
               "steps": steps, "seed": SEED, "threads": 1, "prompts": ps}
        state, _, run = baselines.make(job)
        run()  # one batch of N: x_T of sample i is edgegen's (Philox, per sample)
        raw.put(key, quality_row(ev, state["samples"], labels, time.perf_counter() - t0))


def reference(m, cache: dict, sampler: str, steps: int, batch: int) -> np.ndarray:
    """ONNX Runtime fp32 images of the timed request (what the others are compared with)."""
    if (sampler, steps, batch) not in cache:
        from edgegen.runtimes.api import Pipeline
        cache.setdefault("pipe", Pipeline(m, "onnxruntime", threads=1))
        cache[(sampler, steps, batch)] = cache["pipe"].sample(batch, seed=SEED, batch_size=batch,
                                                              prompt=prompts(m, batch)[1], **plan_options(sampler, steps))
    return cache[(sampler, steps, batch)]


def edgegen_run(pipe, m, sampler: str, steps: int, batch: int):
    ps = prompts(m, batch)[1]
    return lambda: pipe.sample(batch, seed=SEED, batch_size=batch, prompt=ps, **plan_options(sampler, steps))


def latency(m, raw, cache: dict) -> None:
    from edgegen.runtimes.api import Pipeline
    for backend, precision in fr.HOST:
        pipe = None
        plans = PLANS if (backend, precision) == ("onnxruntime", "fp32") else reduced_plans(raw.data["rows"])
        for sampler, steps in plans:
            for batch in BATCHES:
                key = f"t/{backend}/{precision}/host/{sampler}-{steps}/b{batch}"
                if raw.has(key):
                    continue
                t0 = time.perf_counter()
                pipe = pipe or Pipeline(m, backend, precision, threads=1)
                run = edgegen_run(pipe, m, sampler, steps, batch)
                first = run()  # compiles (OpenVINO: per batch size), warms
                load_s = time.perf_counter() - t0
                row = timed(run, batch, REPEATS[batch])
                row["load_and_first_run_s"] = load_s
                row["max_abs_vs_ort_fp32_host"] = float(np.abs(first - reference(m, cache, sampler, steps, batch)).max())
                raw.put(key, row)


def peer_job(m, kind: str, sampler: str, steps: int, batch: int) -> dict:
    return {"kind": kind, "bundle": str(m.root), "precision": "fp32", "batch": batch, "sampler": sampler,
            "steps": steps, "seed": SEED, "threads": 1, "prompts": prompts(m, batch)[1]}


def peer_latency(m, raw, cache: dict) -> None:
    from edgegen.profiling import baselines
    for kind, sampler, steps in PEERS:
        for batch in BATCHES:
            key = f"t/peer/{kind}/{sampler}-{steps}/b{batch}"
            if raw.has(key):
                continue
            t0 = time.perf_counter()
            try:
                state, first_call, run = baselines.make(peer_job(m, kind, sampler, steps, batch))
                first_call()
                run()
            except Exception as e:  # recorded, the run goes on
                raw.put(key, {"error": f"{type(e).__name__}: {e}".splitlines()[0]})
                continue
            load_s = time.perf_counter() - t0
            row = timed(run, batch, REPEATS[batch])
            row["load_and_first_run_s"] = load_s
            # against edgegen's fp32 images of the same plan: torch computes edgegen's DDIM, diffusers'
            # DPM-Solver++ is what edgegen's dpmpp_2m plan compiles, diffusers' DDIM differs (its own step)
            row["max_abs_vs_ort_fp32_host"] = float(np.abs(state["samples"] -
                                                               reference(m, cache, sampler, steps, batch)).max())
            raw.put(key, row)


def head_to_head(m, raw, rows: dict) -> None:
    """The fastest edgegen configuration within budget, the diffusers DDIM-50 loop and the best peer within
    budget, timed again interleaved (one run of each per round), as frontier.py's head_to_head."""
    from edgegen.profiling import baselines
    from edgegen.runtimes.api import Pipeline
    entries = fr.table(rows)
    for batch, v in fr.verdict(entries).items():
        key = f"h/b{batch}"
        if raw.has(key) or v["best"] is None:
            continue
        runs = {}
        # the H2H_EDGEGEN fastest edgegen configurations within budget: on a loaded machine the single latency
        # rows that picked v["best"] are noisy, the interleaved rounds decide among the closest
        close = sorted((e for e in entries if e["batch"] == batch and e["family"] == "edgegen" and e.get("in_budget")),
                       key=lambda e: e["ms"])[:H2H_EDGEGEN]
        for e in (*close, v["diffusers_ddim50"], v["best_peer"]):
            if e is None or e["name"] in runs:
                continue
            words = e["name"].split()
            sampler, steps = e["plan"].rsplit("-", 1)
            if e["family"] == "edgegen":
                run = edgegen_run(Pipeline(m, words[0], words[1], threads=1), m, sampler, int(steps), batch)
            else:
                _, first_call, run = baselines.make(peer_job(m, words[0], sampler, int(steps), batch))
                first_call()
            run()  # warm-up (OpenVINO compiles)
            runs[e["name"]] = run
        raw.put(key, {name: t["per_sample_ms"] for name, t in interleaved(runs, batch, ROUNDS[batch]).items()})


# -- the report -------------------------------------------------------------------------------------
def loads(data: dict) -> list[float]:
    return [x for r in data.get("runs", {}).values() for x in (r.get("machine") or {}).get("load_samples", [])] or [0.0]


def ratios(rows: dict, v: dict, b: int) -> tuple[float, float]:
    """(vs the diffusers DDIM-50 loop, vs the best peer within budget) of the fastest edgegen configuration
    at batch b: from the head-to-head when it ran, else from the single rows (0 where missing)."""
    h, peer = rows.get(f"h/b{b}"), v[b]["best_peer"]
    if h:
        ours = [ms for n, ms in h.items() if n.split()[0] not in PEER_KINDS]
        base = h.get(f"diffusers-ort {REF}")
        if ours:
            return ((base or 0) / min(ours), (h.get(peer["name"], 0) if peer else 0) / min(ours))
    return v[b]["vs_diffusers_ddim50"] or 0, v[b]["vs_best_peer"] or 0


def render(data: dict) -> str:
    rows = data["rows"]
    entries = fr.table(rows)
    ref = rows.get(f"q/onnxruntime/fp32/{REF}")
    m = data.get("machine") or {}
    ld = loads(data)
    v = fr.verdict(entries)
    lines = ["# Time to quality: small LDM (Fashion-MNIST, prompts)", "",
             f"Produced by `make bench-frontier-ldm` (`benchmarks/frontier_ldm.py`; raw rows in `benchmarks/{STEM}.json`, "
             f"plot `benchmarks/{STEM}.png`), {data.get('seconds', 0) / 60:.0f} min.",
             f"Machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('features')}; one thread for every runtime; "
             f"1-minute load average between {min(ld):.1f} and {max(ld):.1f} while it ran (the machine is shared with "
             "other jobs, among them a training run at raised priority): single latency rows move by tens of percent "
             "with the load, so the head-to-head lines (timed again interleaved) are the figures to quote.",
             f"Bundle: {data.get('bundle')} (manifest sha256 {data.get('manifest_sha256', '')[:12]}), read only; the whole "
             "prompt -> image pipeline is timed (tokenizer, text encoder, CFG denoiser loop at guidance "
             f"{data.get('guidance', 3):g} (one call on [x; x] per step), VAE decoder). "
             f"Quality: n = {N} held-out-template prompts (labels 0..9 cycled), noise seed {SEED}, the bundle's evaluator "
             "on the raw images (fashion-FID, prompt accuracy), as benchmarks/fast_samplers_ldm.md.",
             f"fp32 quality rows: {data.get('fp32_quality', 'scored in this run')}.", ""]
    if ref:
        lines += [f"Reference (fp32 DDIM-50, edgegen ONNX Runtime): FID {ref['fid']:.2f}, prompt accuracy "
                  f"{100 * ref['accuracy']:.1f}%. Budget: FID <= {(1 + FID_RISE) * ref['fid']:.2f}, "
                  f"accuracy >= {100 * ref['accuracy'] - ACC_DROP_POINTS:.1f}%.", ""]
    lines += ["## Verdict", ""] + fr.verdict_lines(v, ".2f")
    for b in BATCHES:
        h = rows.get(f"h/b{b}")
        if h:
            base = h.get(f"diffusers-ort {REF}")
            lines.append(f"- batch {b}, timed again interleaved ({ROUNDS[b]} rounds, median ms/sample): " + "; ".join(
                f"{n} {ms:.2f}" + (f" ({base / ms:.2f}x vs diffusers {REF})" if base else "") for n, ms in h.items()))
            ours = {n: ms for n, ms in h.items() if n.split()[0] not in PEER_KINDS}
            peer = v[b]["best_peer"]
            if ours:
                name = min(ours, key=ours.get)
                lines.append(f"  - **batch {b} head-to-head verdict: {name}, {ours[name]:.2f} ms/sample"
                             + (f", {base / ours[name]:.2f}x faster than the diffusers {REF} + ORT loop" if base else "")
                             + (f", {h[peer['name']] / ours[name]:.2f}x faster than the best peer within budget "
                                f"({peer['name']})" if peer and peer["name"] in h else "") + "**")
    ok = all(ratios(rows, v, b)[0] >= 10 and ratios(rows, v, b)[1] >= 2 for b in BATCHES)
    lines += ["", "Issue 19's targets (set for the base DDPM: 10x over the diffusers DDIM-50 loop and 2x over the best "
              "peer within budget, at batch 1 and 16), applied here too: " + ("reached." if ok else "**not reached** "
                                                                              "(figures above)."), ""]
    lines += ["![latency against FID](frontier_ldm.png)", "",
              "## Quality per precision and plan (host loop)", "",
              "| precision (backend) | " + " | ".join(f"{s}-{k}" for s, k in PLANS) + " |", "|---|" + "---|" * len(PLANS)]
    for backend, precision in [("onnxruntime", "fp32")] + [q for q in QUALITY if q != ("onnxruntime", "fp32")]:
        cells = []
        for s, k in PLANS:
            q = rows.get(f"q/{backend}/{precision}/{s}-{k}")
            cells.append("" if q is None else f"{q['fid']:.2f} / {100 * q['accuracy']:.1f}%"
                         + ("" if ref is None or not Budget().within(q, ref) else " ✓"))
        lines.append(f"| {precision} ({backend}) | " + " | ".join(cells) + " |")
    peers_q = [(k, r) for k, r in rows.items() if k.startswith("q/peer/")]
    if peers_q:
        lines += ["", "| peer (scored on its own images) | FID | prompt accuracy | within budget |", "|---|---:|---:|---|"]
        lines += [f"| {k[7:]} | {r['fid']:.2f} | {100 * r['accuracy']:.1f}% | "
                  f"{'yes' if ref and Budget().within(r, ref) else 'no'}"
                  + (f" (its timed images are within {r['max_abs_vs_ort_fp32_host']:.0e} of edgegen's {r['shared_from']}: "
                     "that row)" if "shared_from" in r else "") + " |" for k, r in peers_q]
    unscored = [f"{kind} {s}-{k}" for kind, s, k in PEERS if kind == "diffusers-ort" and f"q/peer/{kind}/{s}-{k}" not in rows]
    if unscored:
        lines += ["", f"Not scored: {', '.join(unscored)} (SKIP_PEER_QUALITY: diffusers' DDIM images differ from edgegen's, "
                  "and 500 images of 50 CFG steps did not fit the run on this loaded machine; a 50-step loop cannot be "
                  "the best peer within budget, the diffusers DPM-Solver++ loops within budget are 5-10x faster). "
                  "The diffusers DDIM-50 latency is the baseline of the ratios either way."]
    lines += ["", "Cells: fashion-FID / prompt accuracy of the raw images (✓: within budget). OpenVINO fp32 and the "
              "torch DDIM loop compute the ONNX Runtime fp32 images (max abs difference in the tables below), so they "
              "share its quality.", ""]
    lines += fr.latency_lines(rows, entries, v, ".2f", "max abs vs ORT fp32")
    if "calibration" in rows:
        c = rows["calibration"]
        lines += [f"int8: the denoiser's ONNX QDQ model made for this run by `calibrate` (256 prompt-conditioned "
                  f"trajectory calls, no mixed precision, drift gate only) in {c['seconds']:.0f} s; drift "
                  + ", ".join(f"{f} mean abs {d['mean_abs']:.4f}, max abs {d['max_abs']:.3f} ({d['trajectory']}, "
                              f"{d['n']} trajectories)" for f, d in c.get("drift", {}).items()) + ". OpenVINO int8 (NNCF) is left out (see the "
                  "script's INT8_FORMATS).", ""]
    return "\n".join(lines)


def merged(work: Path) -> dict:
    data = {"rows": {}, "runs": {}}
    for f in sorted(work.glob("frontier-raw.*.json")):  # every process of this run
        part = json.loads(f.read_text())
        data["rows"].update({k: v for k, v in part["rows"].items() if not k.startswith("_")})
        data["runs"][f.name] = {"machine": part.get("machine"), "seconds": part.get("seconds")}
        data.setdefault("machine", part.get("machine"))
        for k in ("bundle", "manifest_sha256", "guidance", "fp32_quality"):
            if k in part:
                data.setdefault(k, part[k])
    data["seconds"] = max((r["seconds"] or 0 for r in data["runs"].values()), default=0)
    return data


def main(argv=None) -> int:
    global PLANS, PEERS, HOST, QUALITY, N, BATCH_Q, REPEATS, ROUNDS, REF, WORK, SKIP_PEER_QUALITY
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", type=Path, default=Path("bundles/ldm-small"))
    p.add_argument("--work", type=Path, default=Path("/tmp/edgegen-frontier-ldm"))
    p.add_argument("--render-only", action="store_true")
    p.add_argument("--phase", default="all", help="comma list of latency, peers, quality, head-to-head "
                   "(default all, in that order; a second process may run quality beside the timing)")
    p.add_argument("--no-int8", action="store_true", help="leave int8 out (no calibration)")
    p.add_argument("--torch", action="store_true", help="add the PyTorch eager DDIM-50 loop to the peers")
    p.add_argument("--smoke", action="store_true", help="a minute of everything on tiny settings, written under --work only")
    a = p.parse_args(argv)
    out_dir = HERE
    if a.torch:
        PEERS = PEERS + [("torch-eager", "ddim", 50)]
    if a.no_int8 or a.smoke:
        HOST, QUALITY = [c for c in HOST if c[1] != "int8"], [c for c in QUALITY if c[1] != "int8"]
    if a.smoke:
        PLANS, N, BATCH_Q, REPEATS, ROUNDS, REF = [("ddim", 4), ("dpmpp_2m", 3)], 20, 10, {1: 1, 16: 1}, {1: 1, 16: 1}, "ddim-4"
        PEERS = [("diffusers-ort", "ddim", 4), ("torch-eager", "ddim", 4), ("diffusers-ort", "dpmpp_2m", 3)]
        SKIP_PEER_QUALITY = set()
        out_dir = a.work = a.work.with_name(a.work.name + "-smoke") if a.work == Path("/tmp/edgegen-frontier-ldm") \
            else a.work
    configure()
    WORK = a.work
    out_json = out_dir / f"{STEM}.json"
    if not a.render_only:
        if not (a.bundle / "manifest.json").is_file():
            raise SystemExit(f"bundle not found: {a.bundle} (no manifest.json)")
        a.work.mkdir(parents=True, exist_ok=True)
        phases = a.phase.split(",") if a.phase != "all" else ["latency", "peers", "quality", "head-to-head"]
        unknown = set(phases) - {"latency", "peers", "quality", "head-to-head"}
        if unknown:
            raise SystemExit(f"unknown phase(s) {', '.join(sorted(unknown))} (choose latency, peers, quality, head-to-head)")
        raw = fr.Raw(a.work / f"frontier-raw.{'-'.join(phases)}.json")
        raw.data.setdefault("machine", fr.machine())
        started = time.time()
        from edgegen.manifest import read_manifest
        m = read_manifest(fr.prepare(a.bundle, a.work, raw, int8=not (a.no_int8 or a.smoke), formats=INT8_FORMATS))
        guidance = float(m.generator.get("defaults", {}).get("guidance", 1.0))
        raw.data.update({"bundle": str(a.bundle), "manifest_sha256": manifest_sha(a.bundle), "guidance": guidance})
        fp32, why = ({}, "--smoke: scored in this run") if a.smoke else reused_fp32(a.bundle, guidance=guidance)
        raw.data["fp32_quality"] = (f"reused from {why}" if fp32 else f"scored in this run ({why})")
        for plan, row in fp32.items():
            if plan in {f"{s}-{k}" for s, k in PLANS}:
                raw.data["rows"].setdefault(f"q/onnxruntime/fp32/{plan}", row)
        if not fp32:
            fr.QUALITY = [("onnxruntime", "fp32")] + QUALITY
        cache: dict = {}
        if "latency" in phases:
            latency(m, raw, cache)
        if "peers" in phases:
            peer_latency(m, raw, cache)
        if "quality" in phases:
            import torch
            torch.set_num_threads(1)  # the evaluator's CNN
            from edgegen.train.evaluator import evaluator_for
            ev = evaluator_for(m.data["data"]["source"], m.sample_shape, progress=False)
            quality(m, raw, ev)
            peer_quality(m, raw, ev)
        if "head-to-head" in phases:
            shared_peer_quality(raw)
            head_to_head(m, raw, merged(a.work)["rows"])
        raw.data["seconds"] = raw.data.get("seconds", 0) + time.time() - started
        raw.put("_done", {"phases": phases})
    data = merged(a.work) if a.work.exists() else {"rows": {}}
    if not data["rows"]:
        data = json.loads(out_json.read_text())  # --render-only without the work folder: the committed rows
    else:
        tmp = out_json.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(out_json)
    (out_dir / f"{STEM}.md").write_text(render(data) + "\n")
    fr.plot(fr.table(data["rows"]), data["rows"].get(f"q/onnxruntime/fp32/{REF}"), out_dir / f"{STEM}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
