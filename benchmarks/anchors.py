"""Anchor comparison (issue 19): edgegen against the tools users would pick instead, on one imported
Stable-Diffusion-1.5-shaped pipeline, each tool exporting it itself.

    make bench-anchors                                   # creates .venv-anchors, then runs this
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/anchors.py --peer-python .venv-anchors/bin/python \
        [--width-scale 0.25] [--size 128] [--steps 10] [--images 2] [--work /tmp/edgegen-anchors]

The pipeline: SD 1.5's UNet2DConditionModel / AutoencoderKL / CLIPTextModel configs from
benchmarks/sd15_import.py (random weights, torch.manual_seed(0); UNet and VAE channels times
``--width-scale``, CLIP at full size; CLIP BPE tokenizer with a hand-written vocabulary), with SD
1.5's scheduler values as a DDIMScheduler (so every tool runs the same DDIM, eta 0), saved with
``save_pretrained`` under ``--work`` (never the repo). Nothing is downloaded (HF_HUB_OFFLINE=1).

Tools, each in its own process (its peak RSS is its own; ru_maxrss from wait4):
- edgegen (project venv): ``edgegen import PIPE --format onnx,openvino`` (parity gate included),
  then sampling on onnxruntime and on OpenVINO (Python API, one thread, f32);
- diffusers' StableDiffusionPipeline on PyTorch eager (project venv): the reference image;
- optimum-onnx (.venv-anchors): ``optimum-cli export onnx``, ORTStableDiffusionPipeline (one
  intra-op thread);
- optimum-intel (.venv-anchors): ``optimum-cli export openvino --weight-format fp32``,
  OVStableDiffusionPipeline (INFERENCE_NUM_THREADS 1, INFERENCE_PRECISION_HINT f32);
- openvino-genai (.venv-anchors): Text2ImagePipeline on the optimum-intel export folder (same
  properties), its initial latents given through a Python ``openvino_genai.Generator``.

Every sampler gets the same prompt, 7.5 guidance (CFG: the UNet at batch 2), ``--steps`` DDIM
steps, the size, and the same initial latents: edgegen's Philox draw 0 of seed 0, passed as
``latents=`` to the diffusers-based pipelines and returned by the generator to openvino-genai.
Per tool: load time (constructor to a ready pipeline), the first image, then ``--images`` timed
images (median = latency per image), peak RSS, and the image written as float [0, 1] NHWC
(openvino-genai returns uint8). Output difference: against the PyTorch image, in [0, 1] and in
8-bit levels. A step that fails is recorded with its command and the last lines of its stderr,
and the run goes on. Writes ``--json`` and a Markdown report ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PROMPT = "a photo of the moon"
GUIDANCE = 7.5
SEED = 0
DDIM = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
            set_alpha_to_one=False, steps_offset=1, clip_sample=False)
ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "HF_HUB_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1", "TOKENIZERS_PARALLELISM": "false"}
PEER_PACKAGES = ("torch", "optimum", "optimum-onnx", "optimum-intel", "openvino", "openvino-genai",
                 "openvino-tokenizers", "onnxruntime", "onnx", "diffusers", "transformers", "nncf", "numpy")
PROJECT_PACKAGES = ("edgegen", "torch", "onnxruntime", "openvino", "onnx", "diffusers", "transformers", "numpy")


# -- helpers -------------------------------------------------------------------------------------
def machine() -> dict:
    info = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((x.split(":", 1)[1].strip() for x in info if x.startswith("model name")), platform.processor())
    flags = next((x.split(":", 1)[1].split() for x in info if x.startswith("flags")), [])
    keep = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
            "amx_bf16", "amx_int8")
    mem = {x.split(":")[0]: int(x.split()[1]) // 1024 for x in Path("/proc/meminfo").read_text().splitlines()
           if x.startswith(("MemTotal", "MemAvailable"))}
    return {"cpu": model, "flags": [f for f in keep if f in flags], "cores": os.cpu_count(),
            "ram_total_mb": mem.get("MemTotal"), "python": platform.python_version(), "kernel": platform.release()}


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def versions(names) -> dict:
    from importlib import metadata
    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = None
    return out


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2 ** 20


def run_step(name: str, argv: list[str], work: Path, shown: str) -> dict:
    """Run one command in its own process: wall seconds, peak RSS (MB), exit code, its JSON result
    (the last stdout line starting with '{'), or the tail of its stderr when it failed."""
    log = work / "logs"
    log.mkdir(parents=True, exist_ok=True)
    out_f, err_f = log / f"{name}.out", log / f"{name}.err"
    env = {**os.environ, **ENV}
    print(f"[anchors] {name}: {shown}", file=sys.stderr, flush=True)
    load0 = load()
    t0 = time.perf_counter()
    with open(out_f, "w") as so, open(err_f, "w") as se:
        proc = subprocess.Popen(argv, stdout=so, stderr=se, env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    rec = {"name": name, "command": shown, "rc": rc, "wall_s": round(wall, 2), "rss_mb": round(usage.ru_maxrss / 1024),
           "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
           "load_before": load0, "load_after": load()}
    lines = [x for x in out_f.read_text().splitlines() if x.startswith("{")]
    if rc == 0 and lines:
        rec["result"] = json.loads(lines[-1])
    else:
        err = [x for x in err_f.read_text().splitlines() if x.strip()]
        rec["error"] = "\n".join(err[-25:]) or f"exit {rc}, no stderr"
    print(f"[anchors] {name}: exit {rc}, {wall:.0f} s ({rec['cpu_s']:.0f} s CPU), {rec['rss_mb']} MB"
          + ("" if rc == 0 else "\n" + rec["error"]), file=sys.stderr, flush=True)
    return rec


def latents_shape(size: int) -> tuple:
    return (1, 4, size // 8, size // 8)


def timed_images(make, n: int) -> tuple[dict, object]:
    """The first image (any lazy initialisation), then n timed images: (timings, last image)."""
    t0, c0 = time.perf_counter(), time.process_time()
    img = make()
    first, first_cpu = time.perf_counter() - t0, time.process_time() - c0
    times, cpu = [], []
    for _ in range(n):
        t0, c0 = time.perf_counter(), time.process_time()
        img = make()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"first_image_s": first, "first_image_cpu_s": first_cpu, "image_s": times, "image_cpu_s": cpu,
            "latency_s": statistics.median(times), "latency_cpu_s": statistics.median(cpu)}, img


def save_image(path: Path, img) -> dict:
    """img: (1, H, W, 3) in [0, 1] float, or uint8; written as float32 [0, 1]."""
    import numpy as np
    a = np.asarray(img)
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    a = a.astype(np.float32)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, a)
    tmp.replace(path)
    return {"image": str(path), "shape": list(a.shape), "finite": bool(np.isfinite(a).all()),
            "mean": float(a.mean()), "std": float(a.std())}


def set_threads() -> None:
    import torch
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)


# -- phases run with the project venv --------------------------------------------------------------
def phase_latents(a) -> dict:
    """edgegen's initial noise for seed 0 (Philox draw 0), the latents every tool starts from."""
    import numpy as np
    from edgegen.runtimes import rng
    lat = rng.gaussian(SEED, latents_shape(a.size), draw=0).astype(np.float32)
    np.save(Path(a.work) / "latents.npy", lat)
    return {"latents": list(lat.shape), "std": float(lat.std())}


def phase_build(a) -> dict:
    """Run with the peers' venv (transformers 4): the folder gets SD 1.5's own file layout (CLIP
    weights under ``text_model.``, the tokenizer as vocab.json + merges.txt). transformers 5 saves
    CLIP without the prefix, and transformers 4 then re-initialises every CLIP weight with only a
    warning: optimum-cli would export a random text encoder (seen in this benchmark's first run)."""
    sys.path.insert(0, str(HERE))
    import diffusers
    import torch
    import transformers
    from sd15_import import CLIP, UNET, VAE, clip_tokenizer, scaled
    set_threads()
    work = Path(a.work)
    pipe_dir = work / "pipeline"
    if pipe_dir.exists():
        shutil.rmtree(pipe_dir)
    tok = clip_tokenizer(work / "tokenizer-src")
    torch.manual_seed(0)
    t0 = time.perf_counter()
    unet = diffusers.UNet2DConditionModel(**{**UNET, "sample_size": a.size // 8,
                                             "block_out_channels": scaled(UNET["block_out_channels"], a.width_scale)})
    vae = diffusers.AutoencoderKL(**{**VAE, "sample_size": a.size,
                                     "block_out_channels": scaled(VAE["block_out_channels"], a.width_scale)})
    text = transformers.CLIPTextModel(transformers.CLIPTextConfig(
        **CLIP, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id))
    pipe = diffusers.StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet,
                                             scheduler=diffusers.DDIMScheduler(**DDIM), safety_checker=None,
                                             feature_extractor=None, requires_safety_checker=False)
    tmp = work / "pipeline.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    pipe.save_pretrained(str(tmp), safe_serialization=True)
    tmp.rename(pipe_dir)
    params = {n: sum(p.numel() for p in m.parameters()) for n, m in (("unet", unet), ("vae", vae), ("text_encoder", text))}
    return {"params": params, "unet_channels": list(unet.config.block_out_channels),
            "vae_channels": list(vae.config.block_out_channels), "build_s": time.perf_counter() - t0,
            "pipeline_mb": folder_mb(pipe_dir), "files": sorted(str(f.relative_to(pipe_dir)) for f in pipe_dir.rglob("*")
                                                                 if f.is_file()),
            "versions": versions(("torch", "diffusers", "transformers"))}


def phase_edgegen(a) -> dict:
    import numpy as np
    from edgegen.runtimes.api import open_pipeline
    work = Path(a.work)
    t0, c0 = time.perf_counter(), time.process_time()
    hint = {"inference_precision": a.inference_precision} if a.inference_precision else {}
    pipe = open_pipeline(work / "edgegen-bundle", a.backend, threads=1, **hint)
    load_s = time.perf_counter() - t0
    load_cpu_s = time.process_time() - c0

    def make():
        x = pipe.sample(1, seed=SEED, prompt=PROMPT, steps=a.steps, guidance=GUIDANCE, sampler="ddim")
        return np.clip(x / 2 + 0.5, 0, 1).transpose(0, 2, 3, 1)
    t, img = timed_images(make, a.images)
    extra = {}
    if a.backend == "openvino":
        be = getattr(pipe, "backend", None)
        if hasattr(be, "compiled_precisions"):
            extra["precision_ran"] = be.compiled_precisions()
    tool = f"edgegen-{a.backend}" + (f"-{a.inference_precision}" if a.inference_precision else "")
    return {"tool": tool, "load_s": load_s, "load_cpu_s": load_cpu_s, **t, **extra,
            **save_image(work / f"image-{tool}.npy", img), "versions": versions(PROJECT_PACKAGES)}


def phase_torch(a) -> dict:
    import diffusers
    import numpy as np
    import torch
    set_threads()
    work = Path(a.work)
    t0, c0 = time.perf_counter(), time.process_time()
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(str(work / "pipeline"), safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    load_s = time.perf_counter() - t0
    load_cpu_s = time.process_time() - c0
    lat = torch.from_numpy(np.load(work / "latents.npy"))

    def make():
        with torch.no_grad():
            return pipe(PROMPT, num_inference_steps=a.steps, guidance_scale=GUIDANCE, latents=lat.clone(),
                        height=a.size, width=a.size, output_type="np").images
    t, img = timed_images(make, a.images)
    return {"tool": a.tag, "load_s": load_s, "load_cpu_s": load_cpu_s, **t, **save_image(work / f"image-{a.tag}.npy", img),
            "scheduler": type(pipe.scheduler).__name__, "versions": versions(("torch", "diffusers", "transformers"))}


# -- phases run with the peer venv (.venv-anchors) -------------------------------------------------
def phase_versions(a) -> dict:
    return {"versions": versions(PEER_PACKAGES)}


def phase_optimum_onnx(a) -> dict:
    import numpy as np
    import onnxruntime as ort
    import torch
    set_threads()
    try:
        from optimum.onnxruntime import ORTStableDiffusionPipeline as Pipe
    except ImportError:  # newer optimum-onnx: one class for every diffusion pipeline
        from optimum.onnxruntime import ORTDiffusionPipeline as Pipe
    work = Path(a.work)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    t0, c0 = time.perf_counter(), time.process_time()
    pipe = Pipe.from_pretrained(str(work / "optimum-onnx"), provider="CPUExecutionProvider", session_options=so)
    load_s = time.perf_counter() - t0
    load_cpu_s = time.process_time() - c0
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)
    lat = np.load(work / "latents.npy")

    def make():
        with torch.no_grad():
            return pipe(PROMPT, num_inference_steps=a.steps, guidance_scale=GUIDANCE, latents=torch.from_numpy(lat),
                        height=a.size, width=a.size, output_type="np").images
    t, img = timed_images(make, a.images)
    return {"tool": "optimum-onnx", "class": Pipe.__name__, "load_s": load_s, "load_cpu_s": load_cpu_s, **t,
            "scheduler": type(pipe.scheduler).__name__, **save_image(work / "image-optimum-onnx.npy", img)}


OV_CONFIG = {"INFERENCE_NUM_THREADS": "1", "INFERENCE_PRECISION_HINT": "f32"}


def ov_config(a) -> dict:
    """f32 (as edgegen's fp32 entries), or with --ov-default the plugin's own precision (bf16 on a CPU
    with AVX512-BF16 or AMX: what a user who passes no hint gets)."""
    return {k: v for k, v in OV_CONFIG.items() if not (a.ov_default and k == "INFERENCE_PRECISION_HINT")}


def ov_tag(a, tool: str) -> str:
    return tool + ("-static" if a.static else "") + ("-default-precision" if a.ov_default else "")


def ov_ran(core_or_model) -> str | None:
    try:
        return str(core_or_model.get_property("INFERENCE_PRECISION_HINT"))
    except Exception:  # noqa: BLE001 - only a label in the report
        return None


def phase_optimum_openvino(a) -> dict:
    import numpy as np
    import torch
    set_threads()
    from optimum.intel import OVStableDiffusionPipeline as Pipe
    work = Path(a.work)
    t0, c0 = time.perf_counter(), time.process_time()
    if a.static:  # the tool's documented static-shape path: reshape, then compile
        pipe = Pipe.from_pretrained(str(work / "optimum-openvino"), ov_config=ov_config(a), compile=False)
        pipe.reshape(batch_size=1, height=a.size, width=a.size, num_images_per_prompt=1)
        pipe.compile()
    else:
        pipe = Pipe.from_pretrained(str(work / "optimum-openvino"), ov_config=ov_config(a), compile=True)
    load_s = time.perf_counter() - t0
    load_cpu_s = time.process_time() - c0
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)
    lat = np.load(work / "latents.npy")

    def make():
        with torch.no_grad():
            return pipe(PROMPT, num_inference_steps=a.steps, guidance_scale=GUIDANCE, latents=torch.from_numpy(lat),
                        height=a.size, width=a.size, output_type="np").images
    t, img = timed_images(make, a.images)
    ran = None
    try:
        ran = ov_ran(pipe.unet.request)
    except AttributeError:
        pass
    return {"tool": ov_tag(a, "optimum-intel"), "class": Pipe.__name__, "load_s": load_s, "load_cpu_s": load_cpu_s,
            **t, "unet_precision_ran": ran, "scheduler": type(pipe.scheduler).__name__,
            **save_image(work / f"image-{ov_tag(a, 'optimum-intel')}.npy", img)}


def phase_genai(a) -> dict:
    import numpy as np
    import openvino as ov
    import openvino_genai as genai
    work = Path(a.work)
    lat = np.load(work / "latents.npy")

    class Latents(genai.Generator):
        """The initial latents: edgegen's Philox draw 0 (DDIM with eta 0 draws nothing else)."""

        def __init__(self):
            genai.Generator.__init__(self)
            self.calls = []

        def next(self):
            raise RuntimeError("openvino-genai asked for a scalar random number")

        def randn_tensor(self, shape):
            self.calls.append(list(shape))
            if tuple(shape) != lat.shape:
                raise RuntimeError(f"openvino-genai asked for noise of shape {list(shape)}, latents are {lat.shape}")
            return ov.Tensor(lat.copy())

    t0, c0 = time.perf_counter(), time.process_time()
    if a.static:  # the tool's documented static-shape path: reshape, then compile
        pipe = genai.Text2ImagePipeline(str(work / "optimum-openvino"))
        pipe.reshape(1, a.size, a.size, GUIDANCE)
        pipe.compile("CPU", **ov_config(a))
    else:
        pipe = genai.Text2ImagePipeline(str(work / "optimum-openvino"), "CPU", **ov_config(a))
    load_s = time.perf_counter() - t0
    load_cpu_s = time.process_time() - c0
    gens = []

    def make():
        g = Latents()
        gens.append(g)
        out = pipe.generate(PROMPT, width=a.size, height=a.size, num_inference_steps=a.steps,
                            guidance_scale=GUIDANCE, generator=g)
        return np.array(out.data)
    t, img = timed_images(make, a.images)
    return {"tool": ov_tag(a, "openvino-genai"), "load_s": load_s, "load_cpu_s": load_cpu_s, **t,
            "noise_requests": gens[-1].calls, "output_dtype": str(img.dtype),
            "cpu_default_precision": ov_ran_core(ov), **save_image(work / f"image-{ov_tag(a, 'openvino-genai')}.npy", img)}


def ov_ran_core(ov) -> str | None:
    try:
        return str(ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT"))
    except Exception:  # noqa: BLE001 - only a label in the report
        return None


SAMPLE_STEPS = ("diffusers-torch", "diffusers-torch-project", "edgegen-onnxruntime", "edgegen-openvino", "optimum-onnx",
                "optimum-intel", "openvino-genai", "optimum-intel-static", "openvino-genai-static", "edgegen-openvino-bf16", "optimum-intel-default-precision",
                "openvino-genai-default-precision")
PHASES = {"latents": phase_latents, "build": phase_build, "edgegen": phase_edgegen, "torch": phase_torch, "versions": phase_versions,
          "optimum-onnx": phase_optimum_onnx, "optimum-openvino": phase_optimum_openvino, "genai": phase_genai}


# -- comparison and report ------------------------------------------------------------------------
def compare(steps: list[dict], ref_name: str = "diffusers-torch") -> dict:
    import numpy as np
    imgs = {s["result"]["tool"]: np.load(s["result"]["image"]) for s in steps
            if s.get("result", {}).get("image") and Path(s["result"]["image"]).exists()}
    if ref_name not in imgs:
        return {}
    ref = imgs[ref_name]
    ref8 = np.round(ref * 255)
    out = {}
    for tool, x in imgs.items():
        if x.shape != ref.shape:
            out[tool] = {"shape_mismatch": [list(x.shape), list(ref.shape)]}
            continue
        d = np.abs(x - ref)
        out[tool] = {"max_abs": float(d.max()), "mean_abs": float(d.mean()),
                     "max_levels_8bit": int(np.abs(np.round(x * 255) - ref8).max())}
    return out


def per_tool(steps: list[dict]) -> dict:
    """The sampling rounds of each tool: medians over the rounds, the largest peak RSS."""
    by = {}
    for s in steps:
        res = s.get("result", {})
        if "latency_s" in res:
            by.setdefault(res["tool"], []).append((s, res))
    out = {}
    for tool, xs in by.items():
        med = {k: statistics.median(res[k] for _, res in xs) for k in
               ("load_s", "load_cpu_s", "first_image_s", "first_image_cpu_s", "latency_s", "latency_cpu_s")}
        out[tool] = {**med, "rounds": [res["latency_s"] for _, res in xs],
                     "rounds_cpu": [res["latency_cpu_s"] for _, res in xs], "rss_mb": max(s["rss_mb"] for s, _ in xs)}
    return out


def render(r: dict) -> str:
    m, a = r["machine"], r["args"]
    b = next((s for s in r["steps"] if s["name"] == "build"), {}).get("result", {})
    lines = ["# Anchor comparison: edgegen against optimum-onnx, optimum-intel and openvino-genai", "",
             "Produced by `" + r["command"] + "` (benchmarks/anchors.py; the peers from `.venv-anchors`, made by "
             "`make anchors-venv` from benchmarks/anchors-requirements.txt). Whole run: "
             f"{r['total_s'] / 60:.1f} min ({r['started']} to {r['finished']} UTC)"
             + (f"; the build and export steps were reused from the run started {r['reused_from']} UTC "
                f"({sum(s['wall_s'] for s in r['steps'] if s.get('reused')) / 60:.1f} min then)"
                if r.get("reused_from") else "") + ".", "",
             f"Machine: {m['cpu']}, flags {' '.join(m['flags'])}, {m['cores']} cores shared with other jobs, "
             f"{m['ram_total_mb']} MB RAM, Python {m['python']}. Load average (1/5/15 min) {r['load_before']} before "
             f"the run, {r['load_after']} after. One thread for every runtime (OMP_NUM_THREADS=1, ORT intra/inter-op "
             "1, OpenVINO INFERENCE_NUM_THREADS 1, torch 1).", ""]
    if b:
        p = b["params"]
        lines += [f"Pipeline: SD-1.5-shaped StableDiffusionPipeline, random weights (seed 0), UNet channels "
                  f"{b['unet_channels']} ({p['unet'] / 1e6:.1f} M parameters; width x{a['width_scale']:g} of SD 1.5), "
                  f"VAE {b['vae_channels']} ({p['vae'] / 1e6:.1f} M), CLIP text encoder at full size "
                  f"({p['text_encoder'] / 1e6:.1f} M), DDIMScheduler with SD 1.5's betas; {b['pipeline_mb']:.0f} MB "
                  f"of safetensors. Each image: prompt \"{PROMPT}\", {a['size']}x{a['size']}, {a['steps']} DDIM steps "
                  f"(eta 0), guidance {GUIDANCE} (the UNet at batch 2), the same initial latents "
                  f"{latents_shape(a['size'])} "
                  "(edgegen's Philox draw 0, seed 0) for every tool.", ""]
    rounds = a.get("rounds", 1)
    lines += ["## Per image", "",
              f"Each tool's process ran {rounds} time(s), the tools interleaved (round 1: every tool, then round 2, "
              f"...). In each process: load, a first image, then {a['images']} timed images (median = that round's "
              "latency). The table gives the median over the rounds; wall seconds, and the CPU seconds of the "
              "tool's process (all its threads: time.process_time) over the same calls, which the other jobs on "
              "this shared machine inflate much less than the wall time. Load: constructor to a ready pipeline "
              "(sessions created / models compiled, where the tool does it there). First image: its first call "
              "(lazy compilation, if any). Peak RSS: the largest over the rounds of the whole process (load and "
              "every image). Difference: against diffusers' PyTorch pipeline (.venv-anchors) on the same folder and "
              "latents, images in [0, 1] (and in 8-bit levels).", "",
              "| tool | runtime | load s (CPU s) | first image s (CPU s) | latency per image s (each round) | CPU s "
              "per image | CPU vs edgegen-onnxruntime | peak RSS MB | max abs diff | mean abs diff | max 8-bit levels |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    runtime = {"edgegen-onnxruntime": "onnxruntime (edgegen's export)", "edgegen-openvino": "OpenVINO f32 (edgegen's IR)",
               "diffusers-torch": "PyTorch eager (.venv-anchors: the reference)",
               "diffusers-torch-project": "PyTorch eager (project venv)", "optimum-onnx": "onnxruntime (optimum-cli export onnx)",
               "optimum-intel": "OpenVINO f32 (optimum-cli export openvino)",
               "openvino-genai": "OpenVINO f32, C++ pipeline (optimum-intel's IR)",
               "optimum-intel-static": "OpenVINO f32, reshaped to static shapes, then compiled",
               "openvino-genai-static": "OpenVINO f32, C++ pipeline, reshaped to static shapes, then compiled",
               "edgegen-openvino-bf16": "OpenVINO, bf16 hint (the entry `calibrate --precision bf16` writes; ungated here)",
               "optimum-intel-default-precision": "OpenVINO, no precision hint (the plugin's default)",
               "openvino-genai-default-precision": "OpenVINO C++ pipeline, no precision hint (the plugin's default)"}
    diff = r.get("difference", {})
    agg = per_tool(r["steps"])
    base = agg.get("edgegen-onnxruntime", {}).get("latency_cpu_s")
    for tool, g in agg.items():
        d = diff.get(tool, {})
        ds = (f"{d['max_abs']:.2e} | {d['mean_abs']:.2e} | {d['max_levels_8bit']}" if "max_abs" in d
              else "n/a | n/a | n/a")
        rel = f"{g['latency_cpu_s'] / base:.2f}x" if base else ""
        lines.append(f"| {tool} | {runtime.get(tool, '')} | {g['load_s']:.1f} ({g['load_cpu_s']:.1f}) | "
                     f"{g['first_image_s']:.2f} ({g['first_image_cpu_s']:.2f}) | {g['latency_s']:.2f} "
                     f"({', '.join(f'{x:.2f}' for x in g['rounds'])}) | {g['latency_cpu_s']:.2f} | {rel} | "
                     f"{g['rss_mb']} | {ds} |")
    lines += ["", "## Export, each by its own tool", "",
              "| step | command | wall s | CPU s | peak RSS MB | output MB | result |", "|---|---|---:|---:|---:|---:|---|"]
    for s in r["steps"]:
        if s["name"] not in ("build", "edgegen-import", "optimum-export-onnx", "optimum-export-openvino"):
            continue
        res = s.get("result", {})
        mb = res.get("mb")
        lines.append(f"| {s['name']} | `{s['command']}` | {s['wall_s']:.0f} | {s.get('cpu_s', 0):.0f} | {s['rss_mb']} | "
                     f"{'' if mb is None else f'{mb:.0f}'} | {'ok' if s['rc'] == 0 else 'FAILED (exit %d)' % s['rc']} |")
    failed = [s for s in r["steps"] if s["rc"] != 0]
    if failed:
        lines += ["", "## Failed steps", ""]
        for s in failed:
            lines += [f"**{s['name']}** (`{s['command']}`), exit {s['rc']}:", "", "```", s.get("error", ""), "```", ""]
    lines += ["", "## Versions", "", "| package | project venv (edgegen, diffusers-torch-project) | .venv-anchors (peers, the build, the PyTorch reference) |",
              "|---|---|---|"]
    pv, av = r.get("project_versions", {}), r.get("peer_versions", {})
    for n in sorted(set(pv) | set(av)):
        lines.append(f"| {n} | {pv.get(n) or ''} | {av.get(n) or ''} |")
    lines += ["", "## Commands (in run order; the sampling steps are phases of benchmarks/anchors.py)", ""]
    lines += [f"- `{s['command']}`{'' if not s.get('round') else ' (round %d)' % s['round']}: {s['wall_s']:.0f} s "
              f"({s.get('cpu_s', 0):.0f} s CPU), load average "
              f"{s['load_before'][0]:.1f} -> {s['load_after'][0]:.1f}" + (" (reused from an earlier run)" if s.get("reused") else "")
              for s in r["steps"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("phase", nargs="?", default="all", choices=("all", *PHASES))
    p.add_argument("--width-scale", type=float, default=0.25)
    p.add_argument("--size", type=int, default=128, help="output image size (latents size / 8)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--images", type=int, default=2, help="timed images after the first one")
    p.add_argument("--rounds", type=int, default=3, help="the sampling steps run this many times, interleaved")
    p.add_argument("--work", default="/tmp/edgegen-anchors")
    p.add_argument("--backend", default="onnxruntime", help="phase edgegen")
    p.add_argument("--tag", default="diffusers-torch", help="phase torch: the tool's name in the results")
    p.add_argument("--ov-default", action="store_true", help="phases optimum-openvino, genai: no precision hint")
    p.add_argument("--static", action="store_true", help="phases optimum-openvino, genai: reshape to the image's "
                                                         "static shapes before compiling")
    p.add_argument("--only", default="", help="comma list: run only these sampling steps (with --skip for the "
                                              "setup; use another --json/--out)")
    p.add_argument("--inference-precision", default=None, help="phase edgegen on openvino: the plugin's precision "
                                                                "hint (bf16: what `edgegen calibrate --precision bf16` "
                                                                "writes, here without its gate)")
    p.add_argument("--peer-python", default=str(ROOT / ".venv-anchors" / "bin" / "python"))
    p.add_argument("--skip", default="", help="comma list of steps to leave out (e.g. build,edgegen-import to reuse "
                                               "--work)")
    p.add_argument("--render-only", action="store_true", help="only rewrite --out from --json")
    p.add_argument("--reuse-json", type=Path, default=None, help="where --skip takes the steps from (default --json)")
    p.add_argument("--out", type=Path, default=HERE / "anchors.md")
    p.add_argument("--json", type=Path, default=HERE / "anchors.json")
    a = p.parse_args(argv)
    if a.size % 8 or a.size < 64:
        p.error(f"--size must be a multiple of 8 and at least 64, got {a.size}")
    if a.render_only:  # the Markdown report again from --json (e.g. after a change of the report's layout)
        write(a.out, render(json.loads(a.json.read_text())))
        return 0
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    if a.phase != "all":
        print(json.dumps(PHASES[a.phase](a)), flush=True)
        return 0
    peer = Path(a.peer_python)
    if not peer.exists():
        p.error(f"peer venv python {peer} not found: run `make anchors-venv`")
    skip = set(filter(None, a.skip.split(",")))
    given = list(sys.argv[1:] if argv is None else argv)
    if "--peer-python" in given:  # the make target's own argument
        i = given.index("--peer-python")
        del given[i:i + 2]
    extra = given
    me = [sys.executable, str(Path(__file__).resolve())]
    common = ["--width-scale", str(a.width_scale), "--size", str(a.size), "--steps", str(a.steps),
              "--images", str(a.images), "--work", str(work)]
    pipe, rel = work / "pipeline", "benchmarks/anchors.py"
    edgegen = str(Path(sys.executable).parent / "edgegen")
    optimum_cli = str(peer.parent / "optimum-cli")
    plan = [
        ("build", [str(peer), me[1], "build", *common],
         f".venv-anchors/bin/python {rel} build --width-scale {a.width_scale:g} --size {a.size}"),
        ("latents", me + ["latents", *common], f".venv/bin/python {rel} latents"),
        ("edgegen-import", [edgegen, "import", str(pipe), "--out", str(work / "edgegen-bundle"), "--format",
                            "onnx,openvino", "--quiet"],
         f"edgegen import {pipe} --out {work / 'edgegen-bundle'} --format onnx,openvino --quiet"),
        ("optimum-export-onnx", [optimum_cli, "export", "onnx", "--model", str(pipe), "--task", "text-to-image",
                                 str(work / "optimum-onnx")],
         f"optimum-cli export onnx --model {pipe} --task text-to-image {work / 'optimum-onnx'}"),
        ("optimum-export-openvino", [optimum_cli, "export", "openvino", "--model", str(pipe), "--task",
                                     "text-to-image", "--weight-format", "fp32", str(work / "optimum-openvino")],
         f"optimum-cli export openvino --model {pipe} --task text-to-image --weight-format fp32 "
         f"{work / 'optimum-openvino'}"),
        ("versions", [str(peer), me[1], "versions", *common], f".venv-anchors/bin/python {rel} versions"),
        ("diffusers-torch", [str(peer), me[1], "torch", *common], f".venv-anchors/bin/python {rel} torch"),
        ("diffusers-torch-project", me + ["torch", "--tag", "diffusers-torch-project", *common],
         f".venv/bin/python {rel} torch --tag diffusers-torch-project"),
        ("edgegen-onnxruntime", me + ["edgegen", "--backend", "onnxruntime", *common],
         f".venv/bin/python {rel} edgegen --backend onnxruntime"),
        ("edgegen-openvino", me + ["edgegen", "--backend", "openvino", *common],
         f".venv/bin/python {rel} edgegen --backend openvino"),
        ("optimum-onnx", [str(peer), me[1], "optimum-onnx", *common], f".venv-anchors/bin/python {rel} optimum-onnx"),
        ("optimum-intel", [str(peer), me[1], "optimum-openvino", *common],
         f".venv-anchors/bin/python {rel} optimum-openvino"),
        ("openvino-genai", [str(peer), me[1], "genai", *common], f".venv-anchors/bin/python {rel} genai"),
        ("edgegen-openvino-bf16", me + ["edgegen", "--backend", "openvino", "--inference-precision", "bf16", *common],
         f".venv/bin/python {rel} edgegen --backend openvino --inference-precision bf16"),
        ("optimum-intel-static", [str(peer), me[1], "optimum-openvino", "--static", *common],
         f".venv-anchors/bin/python {rel} optimum-openvino --static"),
        ("openvino-genai-static", [str(peer), me[1], "genai", "--static", *common],
         f".venv-anchors/bin/python {rel} genai --static"),
        ("optimum-intel-default-precision", [str(peer), me[1], "optimum-openvino", "--ov-default", *common],
         f".venv-anchors/bin/python {rel} optimum-openvino --ov-default"),
        ("openvino-genai-default-precision", [str(peer), me[1], "genai", "--ov-default", *common],
         f".venv-anchors/bin/python {rel} genai --ov-default"),
    ]
    r = {"args": {"width_scale": a.width_scale, "size": a.size, "steps": a.steps, "images": a.images,
                  "rounds": a.rounds, "work": str(work)},
         "command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/anchors.py --peer-python .venv-anchors/bin/python"
                    + "".join(" " + x for x in extra) + " (what `make bench-anchors"
                    + (f" ANCHORS_ARGS='{' '.join(extra)}'" if extra else "") + "` runs)",
         "machine": machine(), "load_before": load(), "started": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
         "project_versions": versions(PROJECT_PACKAGES), "steps": []}
    old, old_started = {}, None
    reuse = a.reuse_json or a.json
    if skip and reuse.exists():
        prev = json.loads(reuse.read_text())
        old = {s["name"]: s for s in prev.get("steps", []) if s["name"] not in SAMPLE_STEPS}
        old_started = prev.get("reused_from") or prev.get("started")
    t_run = time.perf_counter()
    setup = [x for x in plan if x[0] not in SAMPLE_STEPS]
    only = set(filter(None, a.only.split(",")))
    sampling = [x for x in plan if x[0] in SAMPLE_STEPS and (not only or x[0] in only)]
    rounds = [(name, argv_, shown, 0) for name, argv_, shown in setup]
    rounds += [(name, argv_, shown, k) for k in range(1, a.rounds + 1) for name, argv_, shown in sampling]
    for name, argv_, shown, k in rounds:
        if name in skip:
            if name in old:
                r["steps"].append({**old[name], "reused": True})
                r["reused_from"] = old_started
            continue
        rec = run_step(name if not k else f"{name}.round{k}", argv_, work, shown)
        rec["step"], rec["round"] = name, k
        out_dir = {"edgegen-import": "edgegen-bundle", "optimum-export-onnx": "optimum-onnx",
                   "optimum-export-openvino": "optimum-openvino", "build": "pipeline"}.get(name)
        if out_dir and (work / out_dir).exists():
            rec.setdefault("result", {})["mb"] = folder_mb(work / out_dir)
        if name == "versions":
            r["peer_versions"] = rec.get("result", {}).get("versions", {})
        r["steps"].append(rec)
    r["total_s"] = time.perf_counter() - t_run
    r["finished"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    r["load_after"] = load()
    r["difference"] = compare(r["steps"])
    write(a.json, json.dumps(r, indent=1))
    write(a.out, render(r))
    print(render(r))
    return 0


def write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


if __name__ == "__main__":
    raise SystemExit(main())
