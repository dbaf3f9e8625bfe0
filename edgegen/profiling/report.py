"""Writing and checking the profile report: report.json (schema ``edgegen.profile/1``),
report.md, and the plots, all written to a temporary folder and renamed into place."""
from __future__ import annotations

import json
from pathlib import Path

from edgegen.errors import EdgegenError
from edgegen.paths import atomic_dir

# key -> type of every successful result (the schema tests check real reports against this)
OK_FIELDS = {"name": str, "kind": str, "backend": str, "precision": str, "batch": int, "status": str,
             "load_seconds": float, "first_call_seconds": float, "first_run_seconds": float,
             "run_ms": dict, "latency_per_sample_ms": dict, "latency_per_step_ms": dict,
             "network_ms_per_run": dict, "host_overhead_fraction": float, "throughput_samples_per_s": float,
             "calls_per_run": int, "peak_rss_mb": float, "speedup_vs": dict, "agreement": dict}
TOP_FIELDS = {"schema": str, "bundle": str, "family": str, "created_utc": str, "request": dict,
              "machine": dict, "peak": dict, "flops": dict, "results": list, "skipped": list}
PERCENTILES = ("p50", "p90", "p99")


def validate(report: dict) -> None:
    """Raise EdgegenError naming the first field that is missing or of the wrong type."""
    def check(d: dict, fields: dict, where: str):
        for key, typ in fields.items():
            if key not in d:
                raise EdgegenError(f"{where}: missing '{key}'")
            ok = isinstance(d[key], typ) or (typ is float and isinstance(d[key], int))
            if not ok:
                raise EdgegenError(f"{where}: '{key}' should be {typ.__name__}, got {type(d[key]).__name__}")
    check(report, TOP_FIELDS, "report")
    if report["schema"] != "edgegen.profile/1":
        raise EdgegenError(f"report: unknown schema {report['schema']!r}")
    for r in report["results"]:
        where = f"result {r.get('name')} batch {r.get('batch')}"
        if r.get("status") == "ok":
            check(r, OK_FIELDS, where)
            for key in ("latency_per_sample_ms", "latency_per_step_ms", "run_ms"):
                for p in PERCENTILES:
                    if not isinstance(r[key].get(p), float):
                        raise EdgegenError(f"{where}: '{key}' has no {p}")
            if not 0.0 <= r["host_overhead_fraction"] <= 1.0:
                raise EdgegenError(f"{where}: host overhead fraction out of [0, 1]")
        elif r.get("status") != "failed" or not r.get("reason"):
            raise EdgegenError(f"{where}: status must be ok, or failed with a reason")
    for s in report["skipped"]:
        if not s.get("reason"):
            raise EdgegenError(f"skipped {s.get('name')}: no reason given")


def _fmt_bytes(n) -> str:
    return "-" if n is None else f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"


def markdown(report: dict) -> str:
    req, m, pk = report["request"], report["machine"], report["peak"]
    lines = [f"# edgegen profile: {report['bundle']}", "",
             f"{report['family']}, sampler {req['sampler']} with {req['steps']} steps, "
             f"{req['repeat']} timed runs per configuration in {req.get('rounds', 1)} interleaved round(s) "
             f"(each a fresh process), seed {req['seed']}, "
             f"{req.get('threads') or 'default'} intra-op threads, created {report['created_utc']}.", "",
             f"Machine: {m['cpu']}, {m['usable_cores']} usable cores, {m['os']}; "
             + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v) + "."
             + (f" Load average when done: {m['load_average'][0]:.1f} (other processes share the CPU)."
                if m.get("load_average") else ""),
             f"CPU features: {m['cpu_features']['summary']}." if m.get("cpu_features") else "",
             f"Measured peak: fp32 GEMM {pk['gemm']['gflops']:.1f} GFLOP/s (n={pk['gemm']['n']}), "
             f"copy bandwidth {pk['bandwidth']['gbytes_per_s']:.1f} GB/s.", ""]
    for b, f in report["flops"].items():
        lines.append(f"FLOPs per network call at batch {b}: {f['flops'] / 1e6:.1f} M "
                     f"({f['macs_flops'] / 1e6:.1f} M in Conv/MatMul/Gemm), "
                     f"{_fmt_bytes(f['weight_bytes'])} of weights.")
    lines += ["", "## Warm latency (ms; p50 / p90 / p99)", "",
              "| config | batch | per sample | per step | host overhead | samples/s | vs torch-eager "
              "| vs diffusers+ORT | max abs diff |",
              "|---|---:|---|---|---:|---:|---:|---:|---:|"]
    ok = [r for r in report["results"] if r["status"] == "ok"]
    for r in ok:
        s, st = r["latency_per_sample_ms"], r["latency_per_step_ms"]
        sp = r.get("speedup_vs", {})
        star = "*" if r.get("per_step_derived") else ""
        lines.append(
            f"| {r['name']} | {r['batch']} | {s['p50']:.2f} / {s['p90']:.2f} / {s['p99']:.2f} "
            f"| {st['p50']:.2f} / {st['p90']:.2f} / {st['p99']:.2f}{star} | {100 * r['host_overhead_fraction']:.1f}% "
            f"| {r['throughput_samples_per_s']:.1f} | "
            + " | ".join(f"{sp[k]:.2f}x" if k in sp else "-" for k in ("torch-eager", "diffusers-ort"))
            + f" | {r['agreement']['max_abs_diff']:.1e} |")
    lines += ["", "Per step: the time from one network call's start to the next (the whole batch). "
              "`*`: run time / steps (the backend runs the whole plan itself). Host overhead: 1 - time inside "
              "network calls / wall time. Max abs diff: final samples against the first row of the same batch "
              "(same x_T), so the baselines are checked to run the same sampler.", "",
              "## Cold start and memory", "",
              "| config | batch | load + compile (s) | first call (s) | first run (s) | peak RSS (MiB) | model on disk "
              "| precision ran |",
              "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in ok:
        ran = (r.get("precision_ran") or {}).get("ran") or "not reported"
        lines.append(f"| {r['name']} | {r['batch']} | {r['load_seconds']:.3f} | {r['first_call_seconds']:.3f} "
                     f"| {r['first_run_seconds']:.3f} | {r['peak_rss_mb']:.0f} | {_fmt_bytes(r['model_bytes'])} "
                     f"| {ran} |")
    roof = [r for r in ok if "achieved_gflops" in r]
    if roof:
        lines += ["", "## Roofline", "",
                  "| config | batch | achieved GFLOP/s (in network calls) | of GEMM peak | arithmetic intensity "
                  "(FLOP/byte, no fusion) | roofline bound GFLOP/s |", "|---|---:|---:|---:|---:|---:|"]
        for r in roof:
            lines.append(f"| {r['name']} | {r['batch']} | {r['achieved_gflops']:.1f} | {100 * r['peak_fraction']:.1f}% "
                         f"| {r['arithmetic_intensity']:.1f} | {r['roofline_bound_gflops']:.1f} |")
    bad = [r for r in report["results"] if r["status"] != "ok"] + report["skipped"]
    if bad:
        lines += ["", "## Not measured", ""]
        lines += [f"- {r['name']}" + (f" batch {r['batch']}" if "batch" in r else "") + f": {r['status']}, {r['reason']}"
                  for r in bad]
    return "\n".join(lines) + "\n"


def write(report: dict, out: Path, plots: bool = True) -> Path:
    """report.json, report.md and the PNG plots into ``out`` (replaced atomically)."""
    validate(report)
    with atomic_dir(Path(out)) as tmp:
        (tmp / "report.json").write_text(json.dumps(report, indent=2))
        (tmp / "report.md").write_text(markdown(report))
        if plots:
            from edgegen.profiling import plots as plot_mod
            plot_mod.latency(report, tmp / "latency.png")
            plot_mod.timeline(report, tmp / "timeline.png")
            plot_mod.roofline(report, tmp / "roofline.png")
    return Path(out)
