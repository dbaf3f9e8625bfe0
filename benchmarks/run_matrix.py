"""The standard latency matrix: every family x {small, base} x every backend,
DDIM/default sampler with 50 steps at batch 1 and 16, next to the PyTorch eager and the
diffusers + onnxruntime baselines. Writes benchmarks/results/<family>-<preset>/ (report.json,
report.md, plots) and benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/run_matrix.py                    # everything (tens of minutes)
    .venv/bin/python benchmarks/run_matrix.py --families ddpm --presets small --repeat 5

Bundles come from bundles/<family>-<preset> (what `edgegen demo` / `edgegen export` wrote).
A preset with no trained bundle is trained for --latency-train-steps steps only and exported:
latency does not depend on the weights' values, and RESULTS.md marks such rows.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _bundle(family: str, preset: str, latency_steps: int) -> tuple[Path, bool]:
    """(bundle, trained_for_quality) for a family/preset, exporting or briefly training as needed."""
    from edgegen.errors import EdgegenError
    from edgegen.train.runs import export_run as export_bundle
    from edgegen.manifest import read_manifest
    from edgegen.train.families import get_preset
    from edgegen.train.runs import load_run, train_run
    for bundle, full in ((ROOT / "bundles" / f"{family}-{preset}", True),
                         (ROOT / "bundles" / "latency" / f"{family}-{preset}", False)):
        try:
            read_manifest(bundle)
            return bundle, full
        except EdgegenError:
            pass
    run = ROOT / "runs" / f"{family}-{preset}"
    full = True
    try:
        load_run(run)
    except EdgegenError:
        cfg = get_preset(family, preset)
        cfg.train.steps = latency_steps
        run, full = ROOT / "runs" / "latency" / f"{family}-{preset}", False
        print(f"[matrix] {family}-{preset}: no trained run; training {latency_steps} steps for latency only")
        train_run(family, cfg, run, progress=True)
    bundle = ROOT / "bundles" / ("" if full else "latency") / f"{family}-{preset}"
    export_bundle(run, ["onnx", "openvino"], bundle, progress=True)
    return bundle, full


def _fully_trained(bundle: Path, family: str, preset: str) -> bool:
    """Whether the bundle's weights had the preset's full training (else: latency only)."""
    from edgegen.train.families import get_preset
    m = json.loads((bundle / "manifest.json").read_text())
    steps = m.get("training", {}).get("config", {}).get("train", {}).get("steps")
    return steps is not None and steps >= get_preset(family, preset).train.steps


def _row(r: dict) -> str:
    s = r["latency_per_sample_ms"]
    sp = r.get("speedup_vs", {})
    ratio = " | ".join(f"{sp[k]:.2f}x" if k in sp else "-" for k in ("torch-eager", "diffusers-ort"))
    return (f"| {r['name']} | {s['p50']:.2f} | {s['p90']:.2f} | {r['network_ms_per_run']['p50']:.1f} "
            f"| {100 * r['host_overhead_fraction']:.2f}% | {ratio} | {r['load_seconds']:.2f} | {r['peak_rss_mb']:.0f} |")


def _goals(reports: list[tuple[str, bool, dict]]) -> list[str]:
    lines = ["## Goals (issue 5), checked on these numbers", ""]
    for label, _, rep in reports:
        ok = [r for r in rep["results"] if r["status"] == "ok"]
        b1 = [r for r in ok if r["batch"] == 1]
        ours = [r for r in b1 if r["kind"] == "edgegen"]
        if not ours:
            continue
        best = min(ours, key=lambda r: r["latency_per_sample_ms"]["p50"])
        eager = best.get("speedup_vs", {}).get("torch-eager")
        ort = next((r for r in ours if r["backend"] == "onnxruntime" and r["precision"] == "fp32"), None)
        ort_vs = ort.get("speedup_vs", {}).get("diffusers-ort") if ort else None
        native = [r for r in ok if r["backend"] == "native"]
        lines.append(f"- {label}: best edgegen backend at batch 1 is {best['name']}, "
                     + (f"{eager:.2f}x the PyTorch eager loop (goal >= 3x: {'met' if eager >= 3 else 'NOT met'})"
                        if eager else "no eager baseline")
                     + "; onnxruntime through edgegen is "
                     + (f"{ort_vs:.2f}x the diffusers + onnxruntime loop (goal >= 1.3x: "
                        f"{'met' if ort_vs >= 1.3 else 'NOT met'})" if ort_vs else "not comparable")
                     + "; native host overhead "
                     + (", ".join(f"batch {r['batch']} {100 * r['host_overhead_fraction']:.2f}%" for r in native)
                        + f" (goal < 2%: {'met' if all(r['host_overhead_fraction'] < 0.02 for r in native) else 'NOT met'})"
                        if native else "not measured (native backend not built/available)") + ".")
    return lines


def results_md(reports: list[tuple[str, bool, dict]]) -> str:
    m = reports[-1][2]["machine"]
    pk = reports[-1][2]["peak"]
    lines = ["# edgegen benchmark results", "",
             "Produced by `benchmarks/run_matrix.py` (each section names its command and time); "
             f"last updated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", "",
             f"- CPU: {m['cpu']}, {m['logical_cores']} logical cores ({m['usable_cores']} usable); {m['os']}",
             "- Libraries: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v),
             f"- Load average when the last profile finished: {m.get('load_average') or 'n/a'} "
             "(the machine was shared with other jobs: the absolute numbers are noisy)",
             f"- Measured peak in the same run: fp32 GEMM {pk['gemm']['gflops']:.1f} GFLOP/s, copy bandwidth "
             f"{pk['bandwidth']['gbytes_per_s']:.1f} GB/s",
             "- Every configuration runs in a fresh process; latency is the median (p50) over the timed runs "
             "after one warm-up run. The machine is shared, so read ratios, not absolute numbers.", "",
             "Columns: ms per sample (p50, p90), network time per run (p50), host overhead (wall time outside "
             "network calls), speed-up over the PyTorch eager loop and over the hand-written diffusers "
             "DDIMScheduler + onnxruntime loop (both on the same network, sampler, steps and x_T), load + "
             "compile time, peak resident memory of the process.", ""]
    lines += _goals(reports) + [""]
    for label, full, rep in reports:
        req = rep["request"]
        mx = rep.get("matrix", {})
        lines += [f"## {label}" + ("" if full else " (weights trained briefly: latency only, no quality)"), "",
                  f"Bundle `{rep['bundle']}`, measured {rep['created_utc']} by `{mx.get('command', '?')}`; "
                  f"load average {rep['machine'].get('load_average', ['?'])[0]:.1f}, "
                  f"{req.get('threads') or 'default'} intra-op threads, {req.get('rounds', 1)} round(s).", "",
                  f"{req['sampler']}-{req['steps']}, {req['repeat']} timed runs; FLOPs per call at batch 1: "
                  f"{rep['flops'].get('1', {}).get('flops', 0) / 1e6:.1f} M. Details and plots: "
                  f"[results/{label}/report.md](results/{label}/report.md).", ""]
        for b in req["batches"]:
            lines += [f"Batch {b}:", "",
                      "| config | ms/sample p50 | p90 | network ms/run | host overhead | vs torch eager "
                      "| vs diffusers+ORT | load s | peak RSS MiB |",
                      "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
            lines += [_row(r) for r in rep["results"] if r["status"] == "ok" and r["batch"] == b] + [""]
        bad = [r for r in rep["results"] if r["status"] != "ok"] + rep["skipped"]
        if bad:
            lines += ["Not measured: " + "; ".join(f"{r['name']} ({r['reason']})" for r in bad), ""]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", default=None, help="comma list (default: every trainable family)")
    p.add_argument("--presets", default="small,base")
    p.add_argument("--backends", default=None, help="default: every registered backend")
    p.add_argument("--batch", default="1,16")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--threads", type=int, default=0, help="intra-op threads of every runtime (0: defaults)")
    p.add_argument("--rounds", type=int, default=2, help="rounds interleaving the configurations in time")
    p.add_argument("--precisions", default="fp32", help="comma list, e.g. fp32,int8")
    p.add_argument("--bundle", action="append", default=[], metavar="LABEL=PATH",
                   help="use this bundle for FAMILY-PRESET (e.g. ddpm-base=bundles/int8/ddpm-base)")
    p.add_argument("--latency-train-steps", type=int, default=30)
    p.add_argument("--out", default=str(ROOT / "benchmarks"))
    args = p.parse_args(argv)

    from edgegen.profiling.report import write
    from edgegen.profiling.runner import ProfileRequest, profile_bundle
    from edgegen.errors import EdgegenError
    given = dict(b.split("=", 1) for b in args.bundle)
    try:
        families = matrix_families(args.families, args.presets.split(","), given)
    except EdgegenError as e:
        print(f"run_matrix: {e}", file=sys.stderr)
        return 2
    os.chdir(ROOT)  # reports name bundles relative to the repository
    start = time.time()
    for family in families:
        for preset in args.presets.split(","):
            if f"{family}-{preset}" in given:
                bundle = (ROOT / given[f"{family}-{preset}"]).resolve()
                full = _fully_trained(bundle, family, preset)
            else:
                bundle, full = _bundle(family, preset, args.latency_train_steps)
            req = ProfileRequest(bundle=str(bundle.relative_to(ROOT)), batches=[int(b) for b in args.batch.split(",")],
                                 steps=args.steps, repeat=args.repeat, threads=args.threads,
                                 rounds=args.rounds, precisions=args.precisions.split(","))
            if args.backends:
                req.backends = args.backends.split(",")
            print(f"[matrix] profiling {bundle}")
            rep = profile_bundle(req)
            label = f"{family}-{preset}"
            rep["matrix"] = {"trained_for_quality": full, "command": " ".join(["benchmarks/run_matrix.py", *argv]),
                             "minutes": (time.time() - start) / 60}
            write(rep, Path(args.out) / "results" / label)
            _write_results(results_md(_all_reports(Path(args.out) / "results")), Path(args.out) / "RESULTS.md")
    return 0


def matrix_families(spec: str | None, presets: list[str], given: dict) -> list[str]:
    """The families of the matrix: ``spec`` (comma list), default every trainable family (an imported-only
    family such as diffusers has no preset to train). A family named explicitly must be trainable unless
    every preset of it comes as a --bundle; an unknown or untrainable one is one EdgegenError line."""
    from edgegen.train.families import check_trainable, trainable
    if not spec:
        return trainable()
    families = [f for f in spec.split(",") if f]
    for family in families:
        if not all(f"{family}-{preset}" in given for preset in presets):
            check_trainable(family)
    return families


def _all_reports(folder: Path) -> list[tuple[str, bool, dict]]:
    """Every committed profile under results/ (several matrix runs accumulate; a label re-run replaces its own)."""
    out = []
    for path in sorted(folder.glob("*/report.json")):
        rep = json.loads(path.read_text())
        out.append((path.parent.name, rep.get("matrix", {}).get("trained_for_quality", True), rep))
    return out


def _write_results(text: str, out: Path) -> None:
    """Rewritten after every bundle, so a long matrix cut short still leaves what it measured."""
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
