"""INT8 benchmark: quality on the trained small DDPM, speed on the base DDPM preset.

Quality (drift, digit-FID, class accuracy, layers kept in float, naive baseline) needs a
trained model: it is read from the calibration report of the small DDPM bundle
(``edgegen calibrate`` run on a copy of bundles/ddpm-small). Speed does not depend on the
weight values, so the base preset is trained for a few steps only (a fully trained base DDPM
takes about 90 min on this machine), exported, calibrated (its quality figures are
meaningless and not gated) and profiled with ``edgegen profile`` (fp32 and int8 on
onnxruntime and openvino, batch 16, one thread, rounds interleaved in time).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/int8.py
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


def run(args: list[str]) -> None:
    print("+ edgegen " + " ".join(args), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
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
    base = speed_bundle(args)
    run(["profile", str(base), "--backends", "onnxruntime,openvino", "--precisions", "fp32,int8", "--batch", "16",
         "--threads", "1", "--rounds", str(args.rounds), "--repeat", str(args.repeat), "--no-baselines",
         "--no-plots", "--out", str(res / "profile-base"), "--quiet"])
    qrep = json.loads((small / "calibration/report.json").read_text())
    brep = json.loads((base / "calibration/report.json").read_text())
    prof = json.loads((res / "profile-base/report.json").read_text())
    shutil.copyfile(small / "calibration/report.json", res / "calibration-small.json")
    shutil.copyfile(base / "calibration/report.json", res / "calibration-base.json")
    lines = [f"# INT8 benchmark ({datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')})", "",
             "Written by `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/int8.py`. Machine: "
             f"{prof['machine'].get('cpu', prof['machine'])}; load average during profiling "
             f"{(prof['machine'].get('load_average') or [float('nan')])[0]:.1f} (2 cores shared with other jobs).", "",
             "## Quality: small DDPM (trained), DDIM-50, same noise, fp32 vs int8 on the same backend", "",
             f"Gate budget: {json.dumps(qrep['budget'])}; FID/accuracy over n = "
             f"{qrep['gate_settings']['n']} samples, drift over {qrep['gate_settings']['drift_n']} trajectories.", ""]
    lines += quality_table(qrep)
    sp = [(f, r["speed"]) for f, r in qrep["formats"].items() if "speed" in r]
    lines += ["", "Single network call at batch 16, one thread (small DDPM, 1.1 M parameters): " +
              "; ".join(f"{qrep['formats'][f]['backend']}: {s['fp32_ms_per_call']:.1f} -> "
                        f"{s['int8_ms_per_call']:.1f} ms ({s['speedup']:.2f}x)" for f, s in sp), ""]
    mixed = res / "calibration-small-mixed.json"
    if mixed.is_file():
        lines += mixed_lines(json.loads(mixed.read_text()))
    lines += ["## Speed: base DDPM preset (6.5 M parameters), batch 16, DDIM-50, one thread", "",
              f"Weights trained for {args.base_steps} steps only: speed does not depend on weight values, quality does "
              "(base-preset quality was not measured: a fully trained base DDPM takes about 90 min on this machine). "
              f"`edgegen profile {args.base_out} --backends onnxruntime,openvino --precisions fp32,int8 --batch 16 "
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
