"""Import a pipeline shaped like Stable Diffusion 1.5 (random weights, built here from its published
configs; nothing downloaded), then sample it: import time, peak memory, file sizes, latency per step.

    make bench-sd15                      # full width, 256x256 output (latents 32x32)
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/sd15_import.py [--width-scale 0.25] [--size 256] \
        [--formats onnx,openvino] [--work /tmp/sd15] [--out benchmarks/sd15_import.md]

Components, from SD 1.5's configs (runwayml/stable-diffusion-v1-5: unet/, vae/, text_encoder/
config.json, published values): UNet2DConditionModel (block_out_channels 320/640/1280/1280,
cross-attention 768, 8 heads, 2 layers per block: 859.5 M parameters), AutoencoderKL (128/256/512/512,
83.7 M), CLIPTextModel (ViT-L/14 text tower, 12 layers, 768 wide, 123.1 M), PNDMScheduler config
(scaled_linear 0.00085-0.012, steps_offset 1), imported with ``--sampler ddim`` (edgegen has no PNDM
sampler). The tokenizer is CLIP's BPE with a hand-written vocabulary (the byte alphabet and a few
merges; CLIP's 49408-entry vocab.json would have to be downloaded), so the text encoder keeps its
full embedding table. ``--width-scale`` scales the UNet's and the VAE's channels (multiples of 32).

Phases, each in its own process so its peak RSS (ru_maxrss) is its own:
1. build: the three networks with torch.manual_seed(0), ``save_pretrained`` (safetensors).
2. import: ``import_pipeline`` (= ``edgegen import PATH --sampler ddim``; ONNX with external data
   above 2 GB, OpenVINO, the parity gate over ``--gate-steps`` DDIM steps with guidance 7.5).
3. sample, per backend: load time, then a 1-step and a ``--sample-steps`` sample of one prompt
   (DDIM, guidance 7.5: the UNet at batch 2), each timed whole; latency per step = the denoiser's
   own time per call (the pipeline's network counters) in the second.
Writes the results as JSON (``--json``) and a Markdown report (``--out``).

Phase ``onnx-unet`` (run alone, after ``build``): only the UNet to ONNX as the import writes it
(external data above 2 GB, its data file a sha256-checked companion) and one onnxruntime call, the
> 2 GB path at full width without the whole import's parity gates.
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
PROMPT = "a photo of the moon"

UNET = dict(in_channels=4, out_channels=4, center_input_sample=False, flip_sin_to_cos=True, freq_shift=0,
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, downsample_padding=1,
            mid_block_scale_factor=1, act_fn="silu", norm_num_groups=32, norm_eps=1e-5, cross_attention_dim=768,
            attention_head_dim=8)
VAE = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
           up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
           act_fn="silu", latent_channels=4, norm_num_groups=32, scaling_factor=0.18215)
CLIP = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
            max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=768)
SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                 set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1)


# -- helpers -------------------------------------------------------------------------------------
def machine(work: Path) -> dict:
    info = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((x.split(":", 1)[1].strip() for x in info if x.startswith("model name")), platform.processor())
    flags = next((x.split(":", 1)[1].split() for x in info if x.startswith("flags")), [])
    mem = {x.split(":")[0]: int(x.split()[1]) // 1024 for x in Path("/proc/meminfo").read_text().splitlines()
           if x.startswith(("MemTotal", "MemAvailable"))}
    keep = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
    return {"cpu": model, "flags": [f for f in keep if f in flags], "cores": os.cpu_count(),
            "load": os.getloadavg(), "ram_total_mb": mem.get("MemTotal"), "ram_available_mb": mem.get("MemAvailable"),
            "disk_free_gb": round(shutil.disk_usage(work).free / 2 ** 30, 1),
            "threads": os.environ.get("OMP_NUM_THREADS", "unset")}


def scaled(channels, s: float) -> tuple:
    return tuple(max(32, int(round(c * s / 32)) * 32) for c in channels)


def byte_alphabet() -> list[str]:
    """GPT-2/CLIP's bytes_to_unicode: 256 printable characters, one per byte."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    out, moved = [], 0
    for b in range(256):
        if b in keep:
            out.append(chr(b))
        else:
            out.append(chr(256 + moved))
            moved += 1
    return out


def clip_tokenizer(folder: Path):
    import transformers
    chars = byte_alphabet()
    merges = ["t h", "th e</w>", "o f</w>", "p h", "o t", "ph ot", "phot o</w>", "m o", "o n</w>", "mo on</w>"]
    vocab = chars + [c + "</w>" for c in chars] + [m.replace(" ", "") for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return transformers.CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)


def child(args: list[str]) -> tuple[dict, float, float]:
    """Run this script's phase in a child process: (its JSON result, wall seconds, peak RSS MB)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"phase {args[0]} failed (exit {os.waitstatus_to_exitcode(status)})")
    last = [line for line in out.splitlines() if line.startswith("{")][-1]
    return json.loads(last), wall, usage.ru_maxrss / 1024


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2 ** 20


# -- phases (children) -----------------------------------------------------------------------------
def phase_build(a) -> dict:
    import diffusers
    import torch
    import transformers
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1") or 1))
    pipe_dir = Path(a.work) / "pipeline"
    if pipe_dir.exists():
        shutil.rmtree(pipe_dir)
    tok = clip_tokenizer(Path(a.work) / "tokenizer-src")
    torch.manual_seed(0)
    t0 = time.perf_counter()
    unet = diffusers.UNet2DConditionModel(**{**UNET, "sample_size": a.size // 8,
                                             "block_out_channels": scaled(UNET["block_out_channels"], a.width_scale)})
    vae = diffusers.AutoencoderKL(**{**VAE, "sample_size": a.size,
                                     "block_out_channels": scaled(VAE["block_out_channels"], a.width_scale)})
    n = len(tok)
    text = transformers.CLIPTextModel(transformers.CLIPTextConfig(
        **CLIP, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id))
    init = time.perf_counter() - t0
    pipe = diffusers.StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet,
                                             scheduler=diffusers.PNDMScheduler(**SCHEDULER), safety_checker=None,
                                             feature_extractor=None, requires_safety_checker=False)
    t0 = time.perf_counter()
    pipe.save_pretrained(str(pipe_dir), safe_serialization=True)
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in
              (("unet", unet), ("vae", vae), ("text_encoder", text))}
    return {"params": params, "init_s": init, "save_s": time.perf_counter() - t0, "tokenizer_vocab": n,
            "pipeline_mb": folder_mb(pipe_dir)}


def phase_import(a) -> dict:
    from edgegen.train.diffusers_import import import_pipeline
    out = Path(a.work) / "bundle"
    if out.exists():
        shutil.rmtree(out)
    verify = import_pipeline(Path(a.work) / "pipeline", out, a.formats.split(","), progress=False, sampler="ddim",
                             gate_steps=a.gate_steps)
    m = json.loads((out / "manifest.json").read_text())
    files = {}
    for role, r in m["roles"].items():
        for fmt, per in r["files"].items():
            e = per["fp32"]
            files[f"{role}/{fmt}"] = {"files": [e["path"]] + [c["path"] for c in e.get("companions", [])],
                                      "mb": (e["bytes"] + sum(c["bytes"] for c in e.get("companions", []))) / 2 ** 20}
    checks = {f"{role}/{fmt}": {k: v for k, v in r["fp32"].items() if k in ("single_call_max_abs", "trajectory",
                                                                          "trajectory_max_abs", "passed")}
              for role, per in verify["results"].items() for fmt, r in per.items()}
    return {"passed": verify["passed"], "gate": checks, "files": files, "bundle_mb": folder_mb(out)}


def phase_onnx_unet(a) -> dict:
    """Only the UNet to ONNX (as the import writes it: external data above 2 GB, the data files as
    companions), then one onnxruntime call: the > 2 GB path at full size without the whole import."""
    import diffusers
    import numpy as np
    import onnxruntime as ort
    import torch
    from edgegen.export.example_inputs import example_inputs
    from edgegen.export.onnx_export import external_data, export_onnx
    from edgegen.manifest import file_entry
    from edgegen.roles import RoleSpec, TensorSpec
    from edgegen.train.diffusers_family import ContextDenoiser
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1") or 1))
    unet = diffusers.UNet2DConditionModel.from_pretrained(str(Path(a.work) / "pipeline" / "unet")).eval()
    s, c = unet.config.sample_size, unet.config.cross_attention_dim
    spec = RoleSpec((TensorSpec("x", ("batch", 4, s, s), "float32"), TensorSpec("t", ("batch",), "float32"),
                     TensorSpec("context", ("batch", 77, c), "float32")),
                    (TensorSpec("out", ("batch", 4, s, s), "float32"),), {"time_input": "t"})
    out = Path(a.work) / "onnx-unet"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir()
    example = example_inputs(spec, 1, 0)
    t0 = time.perf_counter()
    export_onnx(ContextDenoiser(unet), spec, example, out / "denoiser.onnx")
    export_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    entry = file_entry(out, "denoiser.onnx")
    entry["companions"] = [file_entry(out, p.name) for p in external_data(out / "denoiser.onnx")]
    hash_s = time.perf_counter() - t0
    with torch.no_grad():
        ref = ContextDenoiser(unet)(*[torch.from_numpy(example[t.name]) for t in spec.inputs]).numpy()
    del unet
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(os.environ.get("OMP_NUM_THREADS", "1") or 1)
    t0 = time.perf_counter()
    sess = ort.InferenceSession(str(out / "denoiser.onnx"), so, providers=["CPUExecutionProvider"])
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    got = sess.run(None, example)[0]
    return {"export_s": export_s, "sha256_s": hash_s, "ort_load_s": load_s, "ort_call_s": time.perf_counter() - t0,
            "max_abs_vs_torch": float(np.abs(got - ref).max()), "entry": entry,
            "onnx_mb": entry["bytes"] / 2 ** 20, "data_mb": sum(c["bytes"] for c in entry["companions"]) / 2 ** 20}


def phase_sample(a) -> dict:
    import numpy as np
    from edgegen.runtimes.api import open_pipeline
    t0 = time.perf_counter()
    pipe = open_pipeline(Path(a.work) / "bundle", a.backend, **({"threads": int(os.environ.get("OMP_NUM_THREADS", 0) or 0)}
                                                                 if a.backend == "onnxruntime" else {}))
    load = time.perf_counter() - t0
    times = {}
    for steps in (1, a.sample_steps):
        pipe.generator.reset_counters()
        t0 = time.perf_counter()
        x = pipe.sample(1, seed=0, prompt=PROMPT, steps=steps)
        times[steps] = time.perf_counter() - t0
    calls = pipe.generator.network_calls  # the last sample's denoiser calls (CFG: batch 2 each)
    return {"backend": a.backend, "load_s": load, "sample_1_step_s": times[1],
            "sample_n_steps_s": times[a.sample_steps], "steps": a.sample_steps,
            "step_ms": 1000 * pipe.generator.network_seconds / max(calls, 1), "network_calls": calls,
            "image": list(x.shape), "finite": bool(np.isfinite(x).all())}


# -- report ----------------------------------------------------------------------------------------
def _num(v) -> str:
    return "n/a" if v is None else f"{v:.0f}"


def render(r: dict) -> str:
    m, b, i = r["machine"], r["build"], r["import"]
    total = sum(b["params"].values())
    lines = [f"# Stable-Diffusion-1.5-shaped import (width x{r['args']['width_scale']:g}, {r['args']['size']}x"
             f"{r['args']['size']} output)", "",
             "Produced by `" + r["command"] + "` (benchmarks/sd15_import.py; random weights built here from SD 1.5's "
             "published configs, nothing downloaded).", "",
             f"Machine: {m['cpu']}, flags {' '.join(m['flags'])}, {m['cores']} cores, OMP_NUM_THREADS={m['threads']}, "
             f"load average {m['load'][0]:.1f} at the start (shared machine), RAM {m['ram_total_mb']} MB "
             f"({m['ram_available_mb']} MB available), {m['disk_free_gb']} GB disk free.", ""]
    if r["args"]["width_scale"] != 1.0:
        lines += [f"Reduced width: the UNet's and VAE's channels x{r['args']['width_scale']:g} (CLIP at full size). "
                  "The full-width UNet (860 M parameters, 3.4 GB of fp32 weights) is what needs ONNX external data; "
                  "that path (data file beside the model, a companion entry whose sha256 the manifest covers, read by "
                  "onnxruntime, OpenVINO and native) is tested on a small model with the threshold lowered "
                  "(tests/export/test_module_import.py), and at full width by the last section. `make bench-sd15` "
                  "runs the whole import at full width.", ""]
    lines += ["| network | parameters |", "|---|---|"]
    lines += [f"| {k} | {v / 1e6:.1f} M |" for k, v in b["params"].items()] + [f"| total | {total / 1e6:.1f} M |", ""]
    lines += ["| phase | wall s | peak RSS MB | notes |", "|---|---|---|---|",
              f"| build + save_pretrained | {_num(r.get('build_wall_s'))} | {_num(r.get('build_rss_mb'))} | "
              f"init {b['init_s']:.0f} s, save {b['save_s']:.0f} s, pipeline folder {b['pipeline_mb']:.0f} MB |",
              f"| import ({r['args']['formats']}, gate over {r['args']['gate_steps']} DDIM steps) | "
              f"{r['import_wall_s']:.0f} | {r['import_rss_mb']:.0f} | bundle {i['bundle_mb']:.0f} MB, gate "
              f"{'passed' if i['passed'] else 'FAILED'} |"]
    for s in r["sample"]:
        lines.append(f"| sample on {s['backend']} | {s['wall_s']:.0f} | {s['rss_mb']:.0f} | load {s['load_s']:.1f} s; "
                     f"1 step {s['sample_1_step_s']:.1f} s, {s['steps']} steps {s['sample_n_steps_s']:.1f} s "
                     f"(text encoder, UNet, VAE decoder); UNet {s['step_ms']:.0f} ms per step (batch 2, CFG) |")
    lines += ["", "Files (manifest entries; companions are sha256-checked with their model):", "",
              "| role/format | MB | files |", "|---|---|---|"]
    lines += [f"| {k} | {v['mb']:.0f} | {', '.join(v['files'])} |" for k, v in i["files"].items()]
    lines += ["", "Parity gate (fp32, max abs error):", "", "| role/format | single call | trajectory |", "|---|---|---|"]
    for k, c in i["gate"].items():
        traj = f"{c['trajectory']} {c['trajectory_max_abs']:.2e}" if "trajectory_max_abs" in c else ""
        single = f"{c['single_call_max_abs']:.2e}" if "single_call_max_abs" in c else ""
        lines.append(f"| {k} | {single} | {traj} |")
    u = r.get("onnx_unet")
    if u:
        lines += ["", f"## The full-width UNet through ONNX external data (`{u['command']}`)", "",
                  f"UNet2DConditionModel at SD 1.5's full width ({u['params'] / 1e6:.1f} M parameters), built and saved "
                  f"by the build phase, exported as the import exports it: ONNX export {u['export_s']:.0f} s; "
                  f"{u['entry']['path']} {u['onnx_mb']:.1f} MB plus "
                  + ", ".join(f"{c['path']} ({c['bytes']:,} bytes, sha256 {c['sha256'][:16]}...)"
                              for c in u["entry"]["companions"])
                  + f" as companions of its manifest entry (hashing {u['sha256_s']:.1f} s); onnxruntime loads it in "
                  f"{u['ort_load_s']:.0f} s, one call (batch 1) takes {u['ort_call_s']:.1f} s, max abs error "
                  f"{u['max_abs_vs_torch']:.1e} against PyTorch; peak RSS {u['rss_mb']:.0f} MB, {u['wall_s']:.0f} s "
                  "for the phase."]
    return "\n".join(lines) + f"\n\n<!-- raw results\n{json.dumps(r, indent=1)}\n-->\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("phase", nargs="?", default="all", choices=("all", "build", "import", "sample", "onnx-unet"))
    p.add_argument("--width-scale", type=float, default=1.0)
    p.add_argument("--size", type=int, default=256, help="output image size (latents size / 8)")
    p.add_argument("--formats", default="onnx,openvino")
    p.add_argument("--gate-steps", type=int, default=2)
    p.add_argument("--work", default="/tmp/edgegen-sd15")
    p.add_argument("--backend", default="onnxruntime", help="phase sample")
    p.add_argument("--sample-steps", type=int, default=3)
    p.add_argument("--out", type=Path, default=None, help="Markdown report (default: print it)")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    Path(a.work).mkdir(parents=True, exist_ok=True)
    if a.phase != "all":
        phases = {"build": phase_build, "import": phase_import, "sample": phase_sample, "onnx-unet": phase_onnx_unet}
        print(json.dumps(phases[a.phase](a)), flush=True)
        return 0
    common = ["--width-scale", str(a.width_scale), "--size", str(a.size), "--formats", a.formats,
              "--gate-steps", str(a.gate_steps), "--sample-steps", str(a.sample_steps), "--work", a.work]
    r = {"args": {"width_scale": a.width_scale, "size": a.size, "formats": a.formats, "gate_steps": a.gate_steps},
         "command": f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} python benchmarks/sd15_import.py "
                    + " ".join(common[:-2]),
         "machine": machine(Path(a.work))}
    print(json.dumps(r["machine"]), flush=True)
    r["build"], r["build_wall_s"], r["build_rss_mb"] = child(["build", *common])
    print(json.dumps({"build": r["build"], "wall_s": r["build_wall_s"], "rss_mb": r["build_rss_mb"]}), flush=True)
    r["import"], r["import_wall_s"], r["import_rss_mb"] = child(["import", *common])
    print(json.dumps({"import": r["import"], "wall_s": r["import_wall_s"], "rss_mb": r["import_rss_mb"]}), flush=True)
    r["sample"] = []
    for backend in a.formats.split(","):
        backend = {"onnx": "onnxruntime"}.get(backend, backend)
        s, wall, rss = child(["sample", *common, "--backend", backend])
        r["sample"].append({**s, "wall_s": wall, "rss_mb": rss})
        print(json.dumps(r["sample"][-1]), flush=True)
    text = render(r)
    if a.json:
        a.json.write_text(json.dumps(r, indent=1))
    if a.out:
        tmp = a.out.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(a.out)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
