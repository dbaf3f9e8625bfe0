"""Before/after: the token loop with the dynamic KV cache vs the static-shape cache (issue 17).

ms per sample of the token loop alone (the generator stage: prefill + decode + sampling; no
decoder), one thread per runtime, on a bundle exported with the static roles
(train/static_kv.py), for the Python loop on onnxruntime and openvino (``kv_cache="dynamic"`` /
``"static"``) and the native loop (libedgegen: the bundle as exported before the static cache,
i.e. a copy without its ``static_kv`` entry, vs the bundle itself). Every cell is the best of
``--repeats`` runs after a warm-up run (compiling); the tokens of the two caches are compared too.

    .venv/bin/python benchmarks/static_kv.py bundles/vqvae-small-static bundles/dalle-small-static \\
        --out benchmarks/static_kv
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")

from edgegen.runtimes.api import Pipeline, open_manifest  # noqa: E402

RUNTIMES = ("onnxruntime", "openvino", "native")


def machine() -> dict:
    info = {"python": platform.python_version(), "load_average_start": os.getloadavg()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        flags = fields.get("Flags", "").split()
        info.update({"cpu": fields.get("Model name", "?").strip(), "cpus": fields.get("CPU(s)", "?").strip(),
                     "threads_per_core": fields.get("Thread(s) per core", "?").strip(),
                     "flags": sorted(f for f in flags if f.startswith(("avx", "amx")) or f in ("fma", "f16c"))})
    except (OSError, subprocess.CalledProcessError):
        info["cpu"] = platform.processor()
    import onnxruntime
    import openvino
    info.update({"onnxruntime": onnxruntime.__version__, "openvino": openvino.__version__})
    return info


def without_static(src: Path, dst: Path) -> Path:
    """``src`` as a bundle exported before the static cache (the native loop's 'before')."""
    shutil.copytree(src, dst)
    data = json.loads((dst / "manifest.json").read_text())
    info = data["pipeline"]["generator"].pop("static_kv")
    for role in {info["decode"], info["prefill"]}:
        del data["roles"][role]
    (dst / "manifest.json").write_text(json.dumps(data))
    return dst


def time_loop(pipe: Pipeline, cond, n: int, batch: int, repeats: int) -> tuple[float, np.ndarray]:
    """Best ms per sample of the token loop over ``n`` samples in batches of ``batch``."""
    gen = pipe.generator
    codes = gen.generate(cond, 0, batch, None)  # warm-up: compiles each batch shape
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        got = gen.generate(cond, 0, batch, None)
        best = min(best, time.perf_counter() - t0)
        assert np.array_equal(got, codes)
    return best * 1000.0 / n, codes


def bench_bundle(path: Path, batches: list[int], repeats: int, tmp: Path, min_n: int) -> list[dict]:
    m = open_manifest(path)
    old = open_manifest(without_static(path, tmp / path.name))
    kw = {"labels": 3} if m.stage("condition")["kind"] == "label_token" else {"prompt": "a handwritten seven"}
    rows = []
    for batch in batches:
        n = max(min_n, batch)
        for runtime in RUNTIMES:
            codes = {}
            for cache in ("dynamic", "static"):
                if runtime == "native":
                    pipe = Pipeline(m if cache == "static" else old, "native", threads=1)
                else:
                    pipe = Pipeline(m, runtime, threads=1, kv_cache=cache)
                cond = pipe.condition.prepare(n, **kw)
                ms, codes[cache] = time_loop(pipe, cond, n, batch, repeats)
                rows.append({"bundle": path.name, "runtime": runtime, "cache": cache, "batch": batch, "n": n,
                             "ms_per_sample": ms})
                print(f"{path.name:24s} {runtime:12s} {cache:8s} batch {batch:3d}: {ms:8.2f} ms/sample", flush=True)
                pipe.backend.close()
            rows[-1]["tokens_equal"] = rows[-2]["tokens_equal"] = bool(np.array_equal(codes["dynamic"],
                                                                                       codes["static"]))
    return rows


def write_markdown(result: dict, out: Path) -> None:
    mach = result["machine"]
    lines = ["# Token loop: dynamic vs static-shape KV cache (issue 17)", "",
             "ms per sample of the token loop (prefill + decode + sampling, no decoder), one thread, best of "
             f"{result['repeats']} after a warm-up; tokens of the two caches compared (same seed).", "",
             f"Machine: {mach.get('cpu')}, {mach.get('cpus')} CPUs ({mach.get('threads_per_core')} threads/core), "
             f"flags {' '.join(mach.get('flags', []))}; load average {mach['load_average_start'][0]:.1f} at the "
             f"start, {mach['load_average_end'][0]:.1f} at the end (other sessions share the machine); "
             f"onnxruntime {mach['onnxruntime']}, openvino {mach['openvino']}.", "",
             f"Command: `{result['command']}`", "",
             "| bundle | runtime | batch | dynamic ms/sample | static ms/sample | speed-up | tokens equal |",
             "|---|---|---:|---:|---:|---:|---|"]
    rows = result["rows"]
    for r in rows:
        if r["cache"] != "dynamic":
            continue
        s = next(x for x in rows if x["cache"] == "static" and all(x[k] == r[k] for k in ("bundle", "runtime", "batch")))
        lines.append(f"| {r['bundle']} | {r['runtime']} | {r['batch']} | {r['ms_per_sample']:.2f} | "
                     f"{s['ms_per_sample']:.2f} | {r['ms_per_sample'] / s['ms_per_sample']:.2f}x | "
                     f"{'yes' if r['tokens_equal'] else 'NO'} |")
    lines += ["", f"![dynamic vs static]({out.name}.png)", ""]
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(out.with_suffix(".md"))


def plot(result: dict, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = result["rows"]
    bundles = list(dict.fromkeys(r["bundle"] for r in rows))
    batches = sorted({r["batch"] for r in rows})
    fig, axes = plt.subplots(len(bundles), len(batches), figsize=(4.2 * len(batches), 3.2 * len(bundles)),
                             squeeze=False)
    for i, b in enumerate(bundles):
        for j, batch in enumerate(batches):
            ax = axes[i][j]
            x = np.arange(len(RUNTIMES))
            for k, cache in enumerate(("dynamic", "static")):
                ms = [next(r["ms_per_sample"] for r in rows if r["bundle"] == b and r["batch"] == batch and
                           r["runtime"] == rt and r["cache"] == cache) for rt in RUNTIMES]
                ax.bar(x + (k - 0.5) * 0.38, ms, 0.38, label=f"{cache} cache")
            ax.set_xticks(x, RUNTIMES)
            ax.set_title(f"{b}, batch {batch}", fontsize=9)
            ax.set_ylabel("ms per sample")
            if i == 0 and j == 0:
                ax.legend(fontsize=8)
    fig.suptitle("token loop, one thread (lower is better)", fontsize=10)
    fig.tight_layout()
    tmp = out.with_name(out.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(out.with_suffix(".png"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundles", nargs="+", type=Path)
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--min-n", type=int, default=16, help="samples per run at least (one batch at most)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/static_kv"))
    ap.add_argument("--append", action="store_true", help="add these bundles' rows to an earlier run's --out")
    a = ap.parse_args()
    earlier = json.loads(a.out.with_suffix(".json").read_text()) if a.append else None
    result = {"machine": machine(), "repeats": a.repeats, "rows": [],
              "command": "python benchmarks/static_kv.py " + " ".join(str(b) for b in a.bundles) +
                         f" --batches {a.batches} --repeats {a.repeats} --min-n {a.min_n} --out {a.out}"}
    with tempfile.TemporaryDirectory() as tmp:
        for b in a.bundles:
            result["rows"] += bench_bundle(b, [int(x) for x in a.batches.split(",")], a.repeats, Path(tmp), a.min_n)
    result["machine"]["load_average_end"] = os.getloadavg()
    if earlier:  # one table: the earlier rows first; the machine line spans both runs' loads
        result["rows"] = earlier["rows"] + result["rows"]
        result["command"] = earlier["command"] + "; then " + result["command"] + " --append"
        result["machine"]["load_average_start"] = earlier["machine"]["load_average_start"]
    tmp = a.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(a.out.with_suffix(".json"))
    write_markdown(result, a.out)
    plot(result, a.out)


if __name__ == "__main__":
    main()
