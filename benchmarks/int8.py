"""INT8 benchmark: quality on the trained small and base DDPMs, speed on the base DDPM preset.

Quality (drift, digit-FID, class accuracy, layers kept in float, naive baseline) needs a
trained model: it is read from the calibration reports of the small DDPM bundle
(``edgegen calibrate`` run on a copy of bundles/ddpm-small) and, when ``--base-trained-run``
exists (``edgegen train ddpm --preset base``: about 80 min on 2 free cores), of the fully
trained base DDPM. Speed does not depend on the weight values, so the speed bundle may be a
base preset trained for a few steps only, exported, calibrated (its quality figures are
meaningless and not gated) and profiled with ``edgegen profile`` (fp32 and int8 on
onnxruntime and openvino, batch 16, one thread, rounds interleaved in time).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/int8.py [--gate-threads 2]
Writes benchmarks/int8.md and benchmarks/results/int8/ (profile + calibration reports).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EDGEGEN = [sys.executable, "-m", "edgegen.cli"]


def run(args: list[str], threads: int = 1) -> None:
    print("+ edgegen " + " ".join(args), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    subprocess.run(EDGEGEN + args, cwd=ROOT, check=True, env=env)


def quality_bundle(args) -> Path:
    out = ROOT / args.small_out
    if not (out / "calibration/report.json").is_file():
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(ROOT / args.small, out)
        run(["calibrate", str(out), "--calls", str(args.calls), "--formats", "onnx,openvino,tensorrt,coreml",
             "--n", str(args.n), "--quiet"])
    return out


def mixed_report(args, res: Path) -> None:
    """A second calibration of the small DDPM under a tight FID budget: the mixed-precision search."""
    out = ROOT / (args.small_out + "-mp")
    if not (out / "calibration/report.json").is_file():
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(ROOT / args.small, out)
        run(["calibrate", str(out), "--calls", str(args.calls), "--formats", "onnx", "--max-fid-rise", "0.01",
             "--no-naive", "--n", str(args.n), "--quiet"])
    shutil.copyfile(out / "calibration/report.json", res / "calibration-small-mixed.json")


def base_quality_bundle(args) -> Path | None:
    """The fully trained base DDPM, exported and calibrated with the default budget (None: not trained)."""
    runp, out = ROOT / args.base_trained_run, ROOT / args.base_trained_out
    if not (runp / "model.safetensors").is_file():
        return None
    if not (out / "calibration/report.json").is_file():
        if out.exists():
            shutil.rmtree(out)
        run(["export", str(runp), "--format", "onnx,openvino", "--out", str(out), "--quiet"], args.gate_threads)
        run(["calibrate", str(out), "--calls", str(args.calls), "--formats", "onnx,openvino", "--n", str(args.n),
             "--threads", str(args.gate_threads), "--quiet"], args.gate_threads)
    return out


def speed_bundle(args) -> Path:
    runp, out = ROOT / args.base_run, ROOT / args.base_out
    if not (runp / "model.safetensors").is_file():
        run(["train", "ddpm", "--preset", "base", "--train.steps", str(args.base_steps), "--train.threads", "1",
             "--out", str(runp), "--quiet"])
    if not (out / "calibration/report.json").is_file():
        run(["export", str(runp), "--format", "onnx,openvino", "--out", str(out), "--quiet"])
        # quality of a barely trained model is meaningless: no budget, no search, speed only
        run(["calibrate", str(out), "--calls", str(args.calls), "--formats", "onnx,openvino", "--n", "20",
             "--allow-over-budget", "--no-mixed-precision", "--no-naive", "--quiet"])
    return out


def fmt_pct(v):
    return "n/a" if v is None else f"{100 * v:+.1f}%"


def quality_table(rep: dict) -> list[str]:
    rows = ["| model | calibration | drift mean abs (max) | digit-FID fp32 -> int8 | accuracy fp32 -> int8 | "
            "layers in float | within budget |", "|---|---|---|---|---|---|---|"]
    for fmt in ("onnx", "openvino"):
        r = rep["formats"].get(fmt)
        if not r:
            continue
        rows.append(f"| {r['backend']} int8 | trajectory ({rep['calibration']['calls']} calls) | "
                    f"{r['drift']['mean_abs']:.4f} ({r['drift']['max_abs']:.3f}) | {r['fid']['fp32']:.3f} -> "
                    f"{r['fid']['int8']:.3f} ({fmt_pct(r['fid']['rise'])}) | {100 * r['accuracy']['fp32']:.1f}% -> "
                    f"{100 * r['accuracy']['int8']:.1f}% | {len(r['kept_float'])} | {'yes' if r['passed'] else 'no'} |")
    nv = rep.get("naive_baseline")
    if nv:
        rows.append(f"| onnxruntime int8 | naive: {nv['calibration']['description']} | {nv['drift']['mean_abs']:.4f} "
                    f"({nv['drift']['max_abs']:.3f}) | {nv['fid']['fp32']:.3f} -> {nv['fid']['int8']:.3f} "
                    f"({fmt_pct(nv['fid']['rise'])}) | {100 * nv['accuracy']['fp32']:.1f}% -> "
                    f"{100 * nv['accuracy']['int8']:.1f}% | 0 | {'yes' if nv['passed'] else 'no'} |")
    return rows


def quality_section(title: str, rep: dict, speed_note: str) -> list[str]:
    """Gate budget, the quality table and the single-call speed of one calibration report."""
    lines = [f"## Quality: {title}, DDIM-50, same noise, fp32 vs int8 on the same backend", "",
             f"Gate budget: {json.dumps(rep['budget'])}; FID/accuracy over n = "
             f"{rep['gate_settings']['n']} samples, drift over {rep['gate_settings']['drift_n']} trajectories.", ""]
    lines += quality_table(rep)
    sp = [(f, r["speed"]) for f, r in rep["formats"].items() if "speed" in r]
    return lines + ["", f"Single network call at batch 16 ({speed_note}): " +
                    "; ".join(f"{rep['formats'][f]['backend']}: {s['fp32_ms_per_call']:.1f} -> "
                              f"{s['int8_ms_per_call']:.1f} ms ({s['speedup']:.2f}x)" for f, s in sp), ""]


def mixed_lines(rep: dict) -> list[str]:
    """The mixed-precision search under a tight budget (a second calibration of the small DDPM)."""
    r = rep["formats"]["onnx"]
    out = ["### Mixed precision under a tight budget", "",
           f"`edgegen calibrate COPY --formats onnx --max-fid-rise {rep['budget']['max_fid_rise']} --no-naive "
           f"--n {rep['gate_settings']['n']}` (results/int8/calibration-small-mixed.json). Sensitivity ranking "
           "(each layer quantized alone, relative output MSE): " +
           ", ".join(f"{s['layer']} {s['rel_mse']:.1e}" for s in rep["sensitivity"][:4]) + ", ...", "",
           "| layers kept in float | drift mean abs | digit-FID rise | accuracy drop (points) | within budget |",
           "|---|---|---|---|---|"]
    for a in r["attempts"]:
        out.append(f"| {', '.join(a['kept_float']) or 'none'} | {a['drift_mean_abs']:.4f} | "
                   f"{fmt_pct(a.get('fid_rise'))} | {a.get('accuracy_drop_points', 0):.1f} | "
                   f"{'yes' if a['passed'] else 'no'} |")
    return out + [""]


def speed_table(prof: dict) -> list[str]:
    by = {(r["backend"], r["precision"]): r for r in prof["results"] if r["status"] == "ok" and r["kind"] == "edgegen"}
    rows = ["| backend | fp32 ms/sample p50 | int8 ms/sample p50 | int8 speed-up | network ms/run fp32 -> int8 |",
            "|---|---|---|---|---|"]
    for b in ("onnxruntime", "openvino"):
        f, q = by.get((b, "fp32")), by.get((b, "int8"))
        if f and q:
            fs, qs = f["latency_per_sample_ms"]["p50"], q["latency_per_sample_ms"]["p50"]
            rows.append(f"| {b} | {fs:.2f} | {qs:.2f} | {fs / qs:.2f}x | {f['network_ms_per_run']['p50']:.0f} -> "
                        f"{q['network_ms_per_run']['p50']:.0f} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", default="bundles/ddpm-small", help="the trained small DDPM bundle (copied, not changed)")
    ap.add_argument("--small-out", default="bundles/int8/ddpm-small")
    ap.add_argument("--base-run", default="runs/latency/ddpm-base")
    ap.add_argument("--base-out", default="bundles/int8/ddpm-base")
    ap.add_argument("--base-steps", type=int, default=30)
    ap.add_argument("--base-trained-run", default="runs/ddpm-base", help="a fully trained base DDPM run, if any")
    ap.add_argument("--base-trained-out", default="bundles/int8/ddpm-base-trained")
    ap.add_argument("--gate-threads", type=int, default=1, help="threads for the base quality gate's sampling")
    ap.add_argument("--calls", type=int, default=256)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/int8.md")
    args = ap.parse_args()
    res = ROOT / "benchmarks/results/int8"
    res.mkdir(parents=True, exist_ok=True)
    small = quality_bundle(args)
    mixed_report(args, res)
    trained = base_quality_bundle(args)
    base = trained or speed_bundle(args)  # the same graph: speed does not depend on the weights
    run(["profile", str(base), "--backends", "onnxruntime,openvino", "--precisions", "fp32,int8", "--batch", "16",
         "--threads", "1", "--rounds", str(args.rounds), "--repeat", str(args.repeat), "--no-baselines",
         "--no-plots", "--out", str(res / "profile-base"), "--quiet"])
    qrep = json.loads((small / "calibration/report.json").read_text())
    brep = json.loads((base / "calibration/report.json").read_text())
    prof = json.loads((res / "profile-base/report.json").read_text())
    shutil.copyfile(small / "calibration/report.json", res / "calibration-small.json")
    if trained is None:
        shutil.copyfile(base / "calibration/report.json", res / "calibration-base.json")
    lines = [f"# INT8 benchmark ({datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')})", "",
             f"Written by `{' '.join(['.venv/bin/python benchmarks/int8.py'] + sys.argv[1:])}`. Machine: "
             f"{prof['machine'].get('cpu', prof['machine'])}; load average during profiling "
             f"{(prof['machine'].get('load_average') or [float('nan')])[0]:.1f} (2 cores).", ""]
    lines += quality_section("small DDPM (trained)", qrep, "1.1 M parameters, one thread")
    if trained is not None:
        trep = json.loads((trained / "calibration/report.json").read_text())
        shutil.copyfile(trained / "calibration/report.json", res / "calibration-base-trained.json")
        lines += quality_section(f"base DDPM (fully trained: `{args.base_trained_run}`, results/int8/"
                                 "calibration-base-trained.json)", trep,
                                 f"6.5 M parameters, {args.gate_threads} thread(s)")
    mixed = res / "calibration-small-mixed.json"
    if mixed.is_file():
        lines += mixed_lines(json.loads(mixed.read_text()))
    lines += ["## Speed: base DDPM preset (6.5 M parameters), batch 16, DDIM-50, one thread", "",
              ("Fully trained weights (the bundle of the base quality section). " if trained else
               f"Weights trained for {args.base_steps} steps only: speed does not depend on weight values, quality "
               "does. "),
              f"`edgegen profile {base.relative_to(ROOT)} --backends onnxruntime,openvino --precisions fp32,int8 --batch 16 "
              f"--threads 1 --rounds {args.rounds} --repeat {args.repeat} --no-baselines`.", ""]
    lines += speed_table(prof)
    sb = [(f, r["speed"]) for f, r in brep["formats"].items() if "speed" in r]
    lines += ["", "Single network call at batch 16 from the base bundle's calibration report: " +
              "; ".join(f"{f}: {s['fp32_ms_per_call']:.1f} -> {s['int8_ms_per_call']:.1f} ms ({s['speedup']:.2f}x)"
                        for f, s in sb), ""]
    (ROOT / args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
