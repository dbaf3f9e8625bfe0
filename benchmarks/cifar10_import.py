"""Import the DDPM CIFAR-10 pipeline's UNet2DModel at its real size (random weights, built here from its
published config; nothing downloaded), then `edgegen profile` it at batch 1: load time, latency per
step and peak memory per backend.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/cifar10_import.py [--work /tmp/cifar10] \
        [--steps 10] [--repeat 3] [--backends onnxruntime,openvino,torch] [--out benchmarks/cifar10_import.md]

Config (google/ddpm-cifar10-32: unet/config.json and scheduler_config.json, published values):
sample_size 32, 3 channels, block_out_channels (128, 256, 256, 256), DownBlock2D / AttnDownBlock2D /
DownBlock2D / DownBlock2D and the mirrored up blocks, layers_per_block 2, attention_head_dim None,
downsample_padding 0, flip_sin_to_cos False, freq_shift 1, norm_eps 1e-6 (35.7 M parameters);
DDPMScheduler linear 1e-4..0.02, T 1000, clip_sample. Phases, each a process of its own (its peak RSS
its own): build + ``save_pretrained``; ``edgegen import`` (ONNX + OpenVINO, the parity gate);
``edgegen profile --batch 1 --steps N --threads 1 --no-baselines --no-plots``. The Markdown report
takes the profile's report.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
UNET = dict(sample_size=32, in_channels=3, out_channels=3, center_input_sample=False, time_embedding_type="positional",
            freq_shift=1, flip_sin_to_cos=False, down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D",
                                                                   "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
            block_out_channels=(128, 256, 256, 256), layers_per_block=2, mid_block_scale_factor=1,
            downsample_padding=0, act_fn="silu", attention_head_dim=None, norm_num_groups=32, norm_eps=1e-6)
SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                 variance_type="fixed_small", clip_sample=True)


def machine() -> dict:
    info = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), platform.processor())
    flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), [])
    keep = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")
    return {"cpu": model, "flags": [f for f in keep if f in flags], "cores": os.cpu_count(),
            "load": os.getloadavg(), "threads": os.environ.get("OMP_NUM_THREADS")}


def build(folder: Path) -> dict:
    """The pipeline folder (random weights, seed 0); returns its parameter count."""
    import diffusers
    import torch
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(**UNET)
    pipe = diffusers.DDPMPipeline(unet=unet, scheduler=diffusers.DDPMScheduler(**SCHEDULER))
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pipe.save_pretrained(str(tmp))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)
    return {"parameters": sum(p.numel() for p in unet.parameters())}


def timed(cmd: list[str]) -> dict:
    """Run a phase; wall seconds, CPU seconds and peak RSS (MB) of the child."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd[:3])} failed (exit {r.returncode}): "
                         f"{(r.stderr.strip().splitlines() or [''])[-1]}")
    return {"command": " ".join(cmd), "wall_s": wall,
            "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
            "peak_rss_mb": after.ru_maxrss / 1024}


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def render(r: dict) -> str:
    m, imp = r["machine"], r["import"]
    gate = r.get("gate", {})
    lines = ["# The DDPM CIFAR-10 UNet2DModel at its real size: import and profile", "",
             f"Produced by `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/cifar10_import.py --steps {r['steps']} "
             f"--repeat {r['repeat']}` ({r['date']}). Random weights (seed 0) in the published architecture of "
             f"google/ddpm-cifar10-32: {r['build']['parameters']:,} parameters (the published 35.7 M); "
             "DDPMScheduler linear 1e-4..0.02, T = 1000, clip_sample. Nothing downloaded.",
             f"Machine: {m['cpu']}, flags {' '.join(m['flags'])}, {m['cores']} cores shared with other jobs "
             f"(load average {m['load'][0]:.1f} at the start: absolute times are pessimistic), one thread.", "",
             "## Import (`edgegen import`, ONNX + OpenVINO, parity gate)", "",
             f"- {imp['wall_s']:.0f} s wall ({imp['cpu_s']:.0f} s CPU), peak RSS {imp['peak_rss_mb']:.0f} MB (the "
             f"largest process so far: building the pipeline peaked at {r['build_phase']['peak_rss_mb']:.0f} MB);",
             f"- bundle {r['bundle_mb']:.0f} MB: ONNX {r['onnx_mb']:.0f} MB, OpenVINO {r['openvino_mb']:.0f} MB;"]
    for fmt, g in gate.items():
        lines.append(f"- gate {fmt}: " + ", ".join(f"{k} {v:.1e}" for k, v in g.items()))
    lines += ["", f"## `edgegen profile`, batch 1, {r['steps']} DDPM steps, {r['repeat']} timed runs, 1 thread", "",
              f"Command: `{r['profile']['command'].replace(str(r['work']), '$WORK')}` "
              f"({r['profile']['wall_s']:.0f} s wall).", "",
              "| backend | precision | load s | latency per step p50 ms | whole sample p50 ms | peak RSS MB |",
              "|---|---|---|---|---|---|"]
    for row in r["rows"]:
        lines.append(f"| {row['backend']} | {row['precision']} | {row['load_s']:.2f} | {row['step_ms']:.1f} | "
                     f"{row['sample_ms']:.0f} | {row['peak_rss_mb']:.0f} |")
    lines += ["", "Load: opening the bundle on the backend (sessions, compilation). Latency per step: the "
              "denoiser's time per network call inside the sample (p50 over the timed runs). Peak RSS: "
              "the backend's profiling process."]
    return "\n".join(lines) + "\n"


def rows_of(report: dict) -> list[dict]:
    """The per-backend rows of `edgegen profile`'s report.json (batch 1)."""
    out = []
    for e in report.get("results", []):
        if e.get("status") != "ok" or e.get("batch") != 1 or e.get("kind", "edgegen") != "edgegen":
            continue
        out.append({"backend": e["backend"], "precision": e["precision"], "load_s": e["load_seconds"],
                    "step_ms": e["latency_per_step_ms"]["p50"], "sample_ms": e["run_ms"]["p50"],
                    "peak_rss_mb": e["peak_rss_mb"]})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/cifar10"))
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--backends", default="onnxruntime,openvino,torch")
    p.add_argument("--out", type=Path, default=HERE / "cifar10_import.md")
    p.add_argument("--phase", choices=("build",), help=argparse.SUPPRESS)  # the child of the build phase
    p.add_argument("--render-only", action="store_true", help="re-render --out from WORK/cifar10_import.json")
    a = p.parse_args(argv)
    pipe_dir, bundle, prof = a.work / "ddpm-cifar10", a.work / "bundle", a.work / "profile"
    if a.render_only:
        write_md(a.out, json.loads((a.work / "cifar10_import.json").read_text()))
        return 0
    if a.phase == "build":
        print(json.dumps(build(pipe_dir)))
        return 0
    a.work.mkdir(parents=True, exist_ok=True)
    r = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "steps": a.steps,
         "repeat": a.repeat, "work": str(a.work)}
    exe = [sys.executable, str(Path(__file__).resolve()), "--work", str(a.work), "--phase", "build"]
    r["build_phase"] = timed(exe)
    r["build"] = {"parameters": _count(pipe_dir)}
    edgegen = str(Path(sys.executable).with_name("edgegen"))
    shutil.rmtree(bundle, ignore_errors=True)
    r["import"] = timed([edgegen, "import", str(pipe_dir), "--out", str(bundle), "--quiet"])
    r["bundle_mb"] = folder_mb(bundle)
    r["onnx_mb"], r["openvino_mb"] = folder_mb(bundle / "onnx"), folder_mb(bundle / "openvino")
    verify = json.loads((bundle / "verify.json").read_text())
    r["gate"] = _gate(verify)
    r["profile"] = timed([edgegen, "profile", str(bundle), "--batch", "1", "--steps", str(a.steps), "--backends",
                          a.backends, "--repeat", str(a.repeat), "--no-baselines", "--no-plots", "--threads", "1",
                          "--out", str(prof), "--quiet"])
    r["report"] = json.loads((prof / "report.json").read_text())
    r["rows"] = rows_of(r["report"])
    (a.work / "cifar10_import.json").write_text(json.dumps(r, indent=1))
    write_md(a.out, r)
    return 0


def write_md(out: Path, r: dict) -> None:
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text(render(r))
    tmp.replace(out)
    print(f"wrote {out}")


def _count(folder: Path) -> int:
    """Parameters stored in the pipeline folder's safetensors (no model built)."""
    from safetensors import safe_open
    n = 0
    for f in (folder / "unet").glob("*.safetensors"):
        with safe_open(str(f), "np") as s:
            for k in s.keys():
                n += int(__import__("numpy").prod(s.get_slice(k).get_shape()))
    return n


def _gate(verify: dict) -> dict:
    """The denoiser's parity-gate errors per format (single call, trajectory), as verify.json has them."""
    out = {}
    for fmt, per in verify.get("results", {}).get("denoiser", {}).items():
        check = per.get("fp32", {})
        vals = {f"{k} ({check.get('trajectory')})" if k.startswith("trajectory") else k: v
                for k, v in check.items() if isinstance(v, float) and k.endswith("max_abs")}
        if vals:
            out[fmt] = vals
    return out


if __name__ == "__main__":
    raise SystemExit(main(argv=None))
