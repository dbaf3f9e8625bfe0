"""The loops a user would otherwise run, on the same network and sampler (DDIM, eta = 0).

* ``torch-eager``: the PyTorch loop a researcher writes: the trained module, a DDIM
  update written in torch ops under inference_mode, one module call per step.
* ``torch-compile``: the same loop with the module compiled by ``torch.compile`` (inductor).
* ``diffusers-ort``: the loop written by hand around an onnxruntime session, with
  diffusers' DDIMScheduler doing the update (torch tensors, as diffusers requires); with sampler
  ``dpmpp_2m`` diffusers' DPMSolverMultistepScheduler (DPM-Solver++(2M), its defaults: no x0
  clipping, so it matches edgegen's ``dpmpp_2m`` with ``clip_x0=False``).

Both start from the same x_T as edgegen (Philox draw 0), so the runner can check that
they compute the same samples. Each returns (pipe, first_call, run) like the worker's
edgegen runner; run() -> (wall, network seconds, calls, None) and keeps the last samples.
A prompt-conditioned latent bundle (the small LDM) gets baselines_ldm's loops (text encoder, CFG
denoiser loop, VAE decoder).
"""
from __future__ import annotations

import time

import numpy as np

from edgegen.errors import EdgegenError

BASELINES = ("torch-eager", "torch-compile", "diffusers-ort")
DIFFUSERS_SAMPLERS = {"ddim": "DDIMScheduler", "dpmpp_2m": "DPMSolverMultistepScheduler"}  # diffusers-ort


def unsupported(manifest, sampler: str, kind: str = "diffusers-ort") -> str | None:
    """Why baseline ``kind`` cannot run on this bundle and sampler, or None."""
    from edgegen.profiling import baselines_ldm
    if baselines_ldm.is_prompt_bundle(manifest):  # the prompt -> image pipeline of a latent bundle
        return baselines_ldm.unsupported(manifest, sampler, kind)
    if manifest.generator.get("process") != "ddpm":
        return "the baselines are DDPM loops; this bundle's sampling is not the ddpm process"
    if sampler not in DIFFUSERS_SAMPLERS or (kind != "diffusers-ort" and sampler != "ddim"):
        return "the baselines implement DDIM (and DPM-Solver++(2M) in the diffusers loop) only"
    return None


def _setup(job: dict):
    from edgegen.runtimes import rng
    from edgegen.runtimes.api import open_manifest
    from edgegen.runtimes.plans import respaced_timesteps
    from edgegen.runtimes.schedules import betas
    manifest = open_manifest(job["bundle"])
    reason = unsupported(manifest, job["sampler"], job["kind"])
    if reason:
        raise EdgegenError(reason)
    b = job["batch"]
    sch = manifest.sampling["schedule"]
    beta = betas(sch["kind"], sch["T"], sch.get("beta_start", 1e-4), sch.get("beta_end", 0.02))
    x_T = rng.gaussian(job["seed"], (b, *manifest.sample_shape), draw=0)
    labels = np.arange(b, dtype=np.int64) % max(manifest.num_classes, 1)
    if manifest.num_classes == 0:
        labels[:] = manifest.null_label or 0
    ts = respaced_timesteps(sch["T"], job["steps"])
    return manifest, beta, x_T, labels, ts


def torch_eager(job: dict, compile: bool = False):
    import torch

    from edgegen.runtimes.backends import create_backend
    manifest, beta, x_T, labels, ts = _setup(job)
    # the eager torch network, through the backend registry (the torch backend rebuilds it)
    net = create_backend("torch", manifest, manifest.generator["role"]).module.eval()
    if compile:  # inductor; compiled on the first call of each batch size (first_call)
        net = torch.compile(net)
    ab = torch.cumprod(1 - torch.tensor(beta, dtype=torch.float32), 0)
    y = torch.from_numpy(labels)
    state = {}

    @torch.inference_mode()
    def first_call():
        net(torch.from_numpy(x_T), torch.full((len(y),), float(ts[0])), y)

    @torch.inference_mode()
    def run():
        start, net_s = time.perf_counter(), 0.0
        x = torch.from_numpy(x_T.copy())
        for i, t in enumerate(ts):
            a = ab[t]
            a_prev = ab[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0)
            t0 = time.perf_counter()
            eps = net(x, torch.full((len(y),), float(t)), y)
            net_s += time.perf_counter() - t0
            x0 = ((x - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-1, 1)
            eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
            x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
        state["samples"] = x.numpy()
        return time.perf_counter() - start, net_s, len(ts), None

    return state, first_call, run


def diffusers_ort(job: dict):
    import onnxruntime as ort
    import torch
    from diffusers import DDIMScheduler
    manifest, beta, x_T, labels, ts = _setup(job)
    role = manifest.role(manifest.sampling["role"])
    x_name, t_name, y_name = (t.name for t in role.inputs)
    so = ort.SessionOptions()
    if job.get("threads"):
        so.intra_op_num_threads = job["threads"]
    session = ort.InferenceSession(str(manifest.file(manifest.sampling["role"], "onnx", job["precision"])), so,
                                   providers=["CPUExecutionProvider"])
    if job["sampler"] == "dpmpp_2m":
        from diffusers import DPMSolverMultistepScheduler
        sched = DPMSolverMultistepScheduler(num_train_timesteps=len(beta), trained_betas=beta.tolist(),
                                            timestep_spacing="linspace", prediction_type="epsilon",
                                            algorithm_type="dpmsolver++", solver_order=2)
    else:
        sched = DDIMScheduler(num_train_timesteps=len(beta), trained_betas=beta.tolist(), clip_sample=True,
                              clip_sample_range=1.0, set_alpha_to_one=True, timestep_spacing="linspace",
                              prediction_type="epsilon")
    sched.set_timesteps(job["steps"])
    state = {}

    def first_call():
        session.run(None, {x_name: x_T, t_name: np.full(len(labels), float(ts[0]), np.float32), y_name: labels})

    def run():
        start, net_s = time.perf_counter(), 0.0
        sched.set_timesteps(job["steps"])  # multistep schedulers keep their step index and history
        latents = torch.from_numpy(x_T.copy())
        for t in sched.timesteps:
            t0 = time.perf_counter()
            eps = session.run(None, {x_name: latents.numpy(), t_name: np.full(len(labels), float(t), np.float32),
                                     y_name: labels})[0]
            net_s += time.perf_counter() - t0
            latents = sched.step(torch.from_numpy(eps), t, latents).prev_sample
        state["samples"] = latents.numpy()
        return time.perf_counter() - start, net_s, len(sched.timesteps), None

    return state, first_call, run


def make(job: dict):
    from edgegen.profiling import baselines_ldm
    from edgegen.runtimes.api import open_manifest
    if baselines_ldm.is_prompt_bundle(open_manifest(job["bundle"])):
        return baselines_ldm.make(job)
    if job["kind"] == "torch-eager":
        return torch_eager(job)
    if job["kind"] == "torch-compile":
        return torch_eager(job, compile=True)
    if job["kind"] == "diffusers-ort":
        return diffusers_ort(job)
    raise EdgegenError(f"unknown baseline '{job['kind']}' (choose {', '.join(BASELINES)})")
