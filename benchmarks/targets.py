"""The extra deployment targets of one bundle: what was written, how it was checked, and the
sample quality and speed of the backends that run here (AOTInductor vs onnxruntime).

    OMP_NUM_THREADS=1 .venv/bin/edgegen export runs/ddpm-small \
        --format onnx,openvino,aoti,coreml,tensorrt,npu --out bundles/ddpm-small-targets
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/targets.py --bundle bundles/ddpm-small-targets --n 500
Writes benchmarks/targets.json and benchmarks/targets.md (and prints the table). One thread,
one backend at a time; the load average is recorded because the machine is shared.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def format_rows(manifest, verify: dict) -> list[dict]:
    from edgegen.export.targets import describe_check
    rows = []
    for role, per in verify["results"].items():
        for fmt, by_precision in per.items():
            files = manifest.formats(role).get(fmt, {})
            for precision, r in by_precision.items():
                entry = files.get(precision, {})
                size = entry.get("bytes", 0) + sum(c["bytes"] for c in entry.get("companions", []))
                rows.append({"role": role, "format": fmt, "precision": precision, "passed": r["passed"],
                             "check": describe_check(r), "bytes": size})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", default="bundles/ddpm-small-targets")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--backends", default="torch-aoti,onnxruntime")
    args = ap.parse_args()
    from edgegen.train.evaluate import evaluate
    from edgegen.manifest import read_manifest
    m = read_manifest(Path(args.bundle))
    verify = json.loads((m.root / "verify.json").read_text())
    scores = {}
    for name in args.backends.split(","):
        s, _ = evaluate(m.root, name, n=args.n, progress=False)
        scores[name] = {"accuracy": s["accuracy"], "fid": s["fid"], "plan": s["plan"],
                        "per_sample_ms": s["latency"]["per_sample_ms"], "batch_size": s["latency"]["batch_size"]}
    report = {"bundle": args.bundle, "n": args.n, "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "threads": os.environ.get("OMP_NUM_THREADS"), "load_average": os.getloadavg()},
              "formats": format_rows(m, verify), "scores": scores}
    (ROOT / "benchmarks" / "targets.json").write_text(json.dumps(report, indent=1))
    lines = [f"# Extra targets of `{args.bundle}`", "",
             f"{report['when']}, {report['machine']['cores']} cores, OMP_NUM_THREADS={report['machine']['threads']}, "
             f"load average {', '.join(f'{v:.1f}' for v in report['machine']['load_average'])} (shared machine).", "",
             "| role | format | precision | size | check at export | passed |", "|---|---|---|---|---|---|"]
    for r in report["formats"]:
        lines.append(f"| {r['role']} | {r['format']} | {r['precision']} | {r['bytes'] / 2**20:.1f} MiB | "
                     f"{r['check']} | {r['passed']} |")
    lines += ["", f"Sample quality, {args.n} label-conditioned samples, seed 0 (digit evaluator):", "",
              "| backend | plan | class accuracy | digit-FID | ms / sample (batch) |", "|---|---|---|---|---|"]
    for name, s in scores.items():
        lines.append(f"| {name} | {s['plan']} | {s['accuracy']:.3f} | {s['fid']:.4f} | "
                     f"{s['per_sample_ms']:.1f} ({s['batch_size']}) |")
    text = "\n".join(lines) + "\n"
    (ROOT / "benchmarks" / "targets.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
