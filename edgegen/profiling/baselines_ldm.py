"""The loops a user would otherwise write for a prompt-conditioned latent bundle (the small LDM):
the whole prompt -> image pipeline, on the bundle's own networks, from the same x_T as edgegen.

* ``diffusers-ort``: three onnxruntime sessions (text encoder, denoiser, VAE decoder) driven by
  hand: the prompts tokenized with the bundle's tokenizer.json (HF ``tokenizers``), one text-encoder
  call on [prompts; ""], then per step one denoiser call on [x; x] with [context; null context]
  (classifier-free guidance at the bundle's default scale) and diffusers' DDIMScheduler (or
  DPMSolverMultistepScheduler for ``dpmpp_2m``) doing the update, and the decoder on z / scale.
  The schedulers get the bundle's config (its betas, linspace timesteps, epsilon prediction, no x0
  clipping as the bundle's ``clip_x0`` says); diffusers' DDIM steps to t - T // N, not to the next
  of edgegen's timesteps, so its samples differ slightly from edgegen's DDIM and are scored apart.
* ``torch-eager``: the same loop in PyTorch on the bundle's torch weights (the torch backend
  rebuilds the modules), edgegen's DDIM update (eta 0, steps to the next linspace timestep) written
  in torch ops, so it computes edgegen's samples.

``make(job)`` -> (state, first_call, run) as baselines.make: run() -> (wall, network seconds,
denoiser calls, None) and keeps the images in state["samples"]. ``job["prompts"]``: one per sample
(default: the stored prompt of each label, labels 0..K-1 cycled, as edgegen's pipeline does).
"""
from __future__ import annotations

import time

import numpy as np

from edgegen.errors import EdgegenError

SAMPLERS = {"diffusers-ort": ("ddim", "dpmpp_2m"), "torch-eager": ("ddim",)}


def is_prompt_bundle(manifest) -> bool:
    return (manifest.stage("condition") or {}).get("kind") == "prompt" and bool(
        (manifest.stage("condition") or {}).get("encoder"))


def unsupported(manifest, sampler: str, kind: str) -> str | None:
    if manifest.generator.get("process") != "ddpm" or manifest.generator.get("kind", "plan") != "plan":
        return "the baselines are DDPM loops; this bundle's sampling is not the ddpm process"
    if kind not in SAMPLERS:
        return f"no {kind} baseline for prompt-conditioned latent bundles (choose {', '.join(SAMPLERS)})"
    if sampler not in SAMPLERS[kind]:
        return f"the {kind} baseline of a latent bundle runs {' and '.join(SAMPLERS[kind])} only"
    return None


class _Setup:
    """What both loops share: prompts -> tokens, x_T, the schedule, guidance, decoder scale."""

    def __init__(self, job: dict):
        from tokenizers import Tokenizer

        from edgegen.runtimes import rng
        from edgegen.runtimes.api import open_manifest
        from edgegen.runtimes.plans import respaced_timesteps
        from edgegen.runtimes.schedules import betas
        m = self.manifest = open_manifest(job["bundle"])
        reason = unsupported(m, job["sampler"], job["kind"])
        if reason:
            raise EdgegenError(reason)
        b, gen, cond = job["batch"], m.generator, m.stage("condition")
        prompts = job.get("prompts")
        if prompts is None:
            prompts = [cond["label_prompts"][i % len(cond["label_prompts"])] for i in range(b)]
        if len(prompts) != b:
            raise EdgegenError(f"got {len(prompts)} prompts for a batch of {b}")
        self.prompts = list(prompts)
        tok = cond["tokenizer"]
        self.tokenizer = Tokenizer.from_file(str(m.root / tok["file"]))
        self.text_length = int(tok["text_length"])
        self.pad_id = self.tokenizer.token_to_id("[PAD]") or 0
        sch = gen["schedule"]
        self.beta = betas(sch["kind"], sch["T"], sch.get("beta_start", 1e-4), sch.get("beta_end", 0.02))
        self.x_T = rng.gaussian(job["seed"], (b, *gen["latent_shape"]), draw=0)
        self.ts = respaced_timesteps(sch["T"], job["steps"])
        defaults = gen.get("defaults", {})
        self.guidance = float(defaults.get("guidance", 1.0) if job.get("guidance") is None else job["guidance"])
        self.clip_x0 = bool(defaults.get("clip_x0", False))
        self.scale = float(m.stage("decoder").get("scale", 1.0))
        self.roles = {"text": cond["encoder"]["role"], "denoiser": gen["role"], "decoder": m.stage("decoder")["role"]}

    def tokens(self) -> np.ndarray:
        """(b + 1, L) int64: the prompts and the empty prompt (all padding), right-padded."""
        out = np.full((len(self.prompts) + 1, self.text_length), self.pad_id, dtype=np.int64)
        for i, enc in enumerate(self.tokenizer.encode_batch(self.prompts)):
            if len(enc.ids) > self.text_length:
                raise EdgegenError(f"prompt {self.prompts[i]!r} is longer than {self.text_length} tokens")
            out[i, :len(enc.ids)] = enc.ids
        return out


def diffusers_ort(job: dict):
    import onnxruntime as ort
    import torch
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler
    s = _Setup(job)
    m = s.manifest
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if job.get("threads"):
        so.intra_op_num_threads = job["threads"]

    def session(role):
        return ort.InferenceSession(str(m.file(role, "onnx", job.get("precision", "fp32") if role == s.roles["denoiser"]
                                               else "fp32")), so, providers=["CPUExecutionProvider"])
    text, unet, vae = (session(s.roles[k]) for k in ("text", "denoiser", "decoder"))
    x_name, t_name, c_name = (i.name for i in unet.get_inputs())
    tok_name, z_name = text.get_inputs()[0].name, vae.get_inputs()[0].name
    T = len(s.beta)
    if job["sampler"] == "dpmpp_2m":
        sched = DPMSolverMultistepScheduler(num_train_timesteps=T, trained_betas=s.beta.tolist(),
                                            timestep_spacing="linspace", prediction_type="epsilon",
                                            algorithm_type="dpmsolver++", solver_order=2)
    else:
        sched = DDIMScheduler(num_train_timesteps=T, trained_betas=s.beta.tolist(), clip_sample=s.clip_x0,
                              clip_sample_range=1.0, set_alpha_to_one=True, timestep_spacing="linspace",
                              prediction_type="epsilon")
    b, w = len(s.prompts), np.float32(s.guidance)
    state = {}

    def first_call():
        ctx = text.run(None, {tok_name: s.tokens()})[0]
        c2 = np.concatenate([ctx[:-1], np.repeat(ctx[-1:], b, 0)])
        unet.run(None, {x_name: np.concatenate([s.x_T, s.x_T]), t_name: np.full(2 * b, 999.0, np.float32), c_name: c2})
        vae.run(None, {z_name: s.x_T})

    def run():
        start, net_s = time.perf_counter(), 0.0
        ctx = text.run(None, {tok_name: s.tokens()})[0]
        c2 = np.ascontiguousarray(np.concatenate([ctx[:-1], np.repeat(ctx[-1:], b, 0)]))
        sched.set_timesteps(job["steps"])  # multistep schedulers keep their step index and history
        latents = torch.from_numpy(s.x_T.copy())
        for t in sched.timesteps:
            x = latents.numpy()
            t0 = time.perf_counter()
            out = unet.run(None, {x_name: np.concatenate([x, x]), t_name: np.full(2 * b, float(t), np.float32),
                                  c_name: c2})[0]
            net_s += time.perf_counter() - t0
            eps = out[b:] + w * (out[:b] - out[b:])
            latents = sched.step(torch.from_numpy(eps), t, latents).prev_sample
        z = np.ascontiguousarray(latents.numpy() / np.float32(s.scale), dtype=np.float32)
        state["samples"] = vae.run(None, {z_name: z})[0]
        return time.perf_counter() - start, net_s, len(sched.timesteps), None

    return state, first_call, run


def torch_eager(job: dict):
    import torch

    from edgegen.runtimes.backends import create_backend
    s = _Setup(job)
    m = s.manifest
    text, unet, vae = (create_backend("torch", m, s.roles[k]).module.eval() for k in ("text", "denoiser", "decoder"))
    ab = torch.cumprod(1 - torch.tensor(s.beta, dtype=torch.float64), 0)
    b, w, ts = len(s.prompts), float(s.guidance), [int(t) for t in s.ts]
    state = {}

    @torch.inference_mode()
    def first_call():
        ctx = text(torch.from_numpy(s.tokens()))
        c2 = torch.cat([ctx[:-1], ctx[-1:].expand(b, -1, -1)])
        x = torch.from_numpy(s.x_T)
        unet(torch.cat([x, x]), torch.full((2 * b,), 999.0), c2)
        vae(x)

    @torch.inference_mode()
    def run():
        start, net_s = time.perf_counter(), 0.0
        ctx = text(torch.from_numpy(s.tokens()))
        c2 = torch.cat([ctx[:-1], ctx[-1:].expand(b, -1, -1)])
        x = torch.from_numpy(s.x_T.copy())
        for i, t in enumerate(ts):
            a = ab[t].float()
            a_prev = ab[ts[i + 1]].float() if i + 1 < len(ts) else torch.tensor(1.0)
            t0 = time.perf_counter()
            out = unet(torch.cat([x, x]), torch.full((2 * b,), float(t)), c2)
            net_s += time.perf_counter() - t0
            eps = out[b:] + w * (out[:b] - out[b:])
            x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
            if s.clip_x0:
                x0 = x0.clamp(-1, 1)
                eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
            x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
        state["samples"] = vae(x / s.scale).numpy()
        return time.perf_counter() - start, net_s, len(ts), None

    return state, first_call, run


def make(job: dict):
    if job["kind"] == "diffusers-ort":
        return diffusers_ort(job)
    if job["kind"] == "torch-eager":
        return torch_eager(job)
    raise EdgegenError(f"no {job['kind']} baseline for prompt-conditioned latent bundles "
                       f"(choose {', '.join(SAMPLERS)})")
