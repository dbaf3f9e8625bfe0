"""Latent text-to-image diffusion (Rombach et al. 2022), Fashion-MNIST-sized.

Stage 1, autoencoder (ldm_nets.py): a KL-regularised VAE, x (1, S, S) -> z (C, S/4, S/4),
    L = ||x - D(z)||^2 + beta KL(q(z|x) || N(0, I)),  z = mu + sigma e,
with a small beta (as in the paper: the latents stay close to the images, the decoder sharp).
The latents are scaled by 1 / std(mu) over the training set ("scale" of the decoder stage),
so the diffusion runs on unit-variance latents.
Stage 2, text-conditioned denoiser: captions from class names (ldm_captions.py, held-out templates
for evaluation), a BPE tokenizer (tokenizer.py), a small transformer text encoder tau(y), and a
UNet eps_theta(z_t, t, tau(y)) with cross-attention, trained jointly with the DDPM objective
    L = E || e - eps_theta(sqrt(ab_t) z_0 + sqrt(1 - ab_t) e, t, tau(y)) ||^2 .
Classifier-free guidance (Ho & Salimans 2022): with probability p_uncond the prompt is dropped,
i.e. replaced by the empty prompt (all padding), whose context is the null context at sampling.

Roles: text_encoder (tokens -> context), denoiser (x, t, context), vae_decoder (z -> x),
vae_encoder (x -> z); stages as in docs/notes/latent-stages.md (``pipeline_info``).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from edgegen.errors import EdgegenError
from edgegen.roles import RoleSpec, TensorSpec
from edgegen.runtimes.plans import edit_plan_specs
from edgegen.runtimes.samplers import samplers
from edgegen.runtimes.schedules import alpha_bar
from edgegen.train.data import DataConfig, load_images
from edgegen.train.ddpm import SamplingConfig, ScheduleConfig
from edgegen.train.ldm_captions import ALPHABET, caption_set
from edgegen.train.ldm_nets import (DenoiserConfig, LatentUNet, TextConfig, TextEncoder, VAEConfig, VAEDecoder,
                                    VAEEncoder)
from edgegen.train.loop import TrainConfig, fit

TOKENIZER_FILE = "tokenizer.json"
DOWNSAMPLE = 4  # the VAE's two stride-2 levels


@dataclass
class LDMConfig:
    vae: VAEConfig = field(default_factory=VAEConfig)
    text: TextConfig = field(default_factory=TextConfig)
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    data: DataConfig = field(default_factory=lambda: DataConfig(source="fashion", image_size=32))
    train: TrainConfig = field(default_factory=TrainConfig)  # stage 1 (VAE)
    denoiser_train: TrainConfig = field(default_factory=TrainConfig)  # stage 2 (text encoder + denoiser)
    # stage 1b: the decoder alone on the encoder's posterior means (what sampling and image-to-image
    # decode), the encoder frozen, as Stable Diffusion's ft-MSE decoder; steps 0 skips it. The
    # latents (and so the denoiser) do not depend on it.
    decoder_train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=0))
    # no x0 clipping: the scaled latents are unit-variance, not bounded like pixels
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(guidance=3.0, clip_x0=False))
    kl_weight: float = 1e-4  # beta, per latent element against the per-pixel MSE
    p_uncond: float = 0.1
    latent_scale: float = 0.0  # 1 / std of the training latents (set by training)
    num_classes: int = 10


PRESETS = ("tiny", "small")


def preset(name: str) -> LDMConfig:
    if name == "tiny":  # for tests: digits (always available), seconds; samples are noise-like
        return LDMConfig(vae=VAEConfig(channels=8, latent_channels=2),
                         text=TextConfig(width=16, layers=1, heads=2, vocab_size=64, captions_per_image=1),
                         denoiser=DenoiserConfig(base_channels=16, heads=2),
                         data=DataConfig(source="digits", image_size=16),
                         train=TrainConfig(steps=20, batch_size=32, lr=2e-3, warmup=5, ema_decay=0.9),
                         denoiser_train=TrainConfig(steps=20, batch_size=32, lr=2e-3, warmup=5, ema_decay=0.9),
                         decoder_train=TrainConfig(steps=5, batch_size=32, lr=2e-3, warmup=1, ema_decay=0.9))
    if name == "small":  # Fashion-MNIST; 37 min on one thread (VAE 5.2 + decoder 2.6 + denoiser 28.9)
        # session 7: VAE 4000 steps, decoder fine-tune 3000, denoiser 7000 steps, EMA 0.999 (session 6:
        # 1500 / none / 3000 / 0.995): VAE test MSE 0.013 -> 0.0062, prompt accuracy 0.79 -> 0.912,
        # fashion-FID 331 -> 210 (docs/notes/issue-15-session7.md)
        return LDMConfig(vae=VAEConfig(channels=16, latent_channels=8),
                         denoiser=DenoiserConfig(base_channels=32, heads=4),
                         train=TrainConfig(steps=4000, batch_size=64, lr=2e-3, warmup=50, ema_decay=0.99),
                         denoiser_train=TrainConfig(steps=7000, batch_size=64, lr=1e-3, warmup=100,
                                                    ema_decay=0.999),
                         decoder_train=TrainConfig(steps=3000, batch_size=64, lr=1e-3, warmup=50, ema_decay=0.999))
    raise KeyError(name)


def check(cfg: LDMConfig) -> None:
    s, d = cfg.data.image_size, cfg.denoiser
    if s % DOWNSAMPLE:
        raise EdgegenError(f"image size {s} must be divisible by {DOWNSAMPLE} (the VAE halves it twice)")
    levels = len(d.channel_mults) - 1
    if (s // DOWNSAMPLE) % (2 ** levels):
        raise EdgegenError(f"latent size {s // DOWNSAMPLE} must be divisible by {2 ** levels} "
                           f"for {levels + 1} denoiser levels")
    if cfg.text.width % cfg.text.heads or (d.base_channels * min(d.channel_mults)) % d.heads:
        raise EdgegenError("text.width and the denoiser widths must be divisible by their heads")
    if cfg.text.text_length < 1:
        raise EdgegenError(f"text.text_length must be >= 1, got {cfg.text.text_length}")
    if not 0.0 <= cfg.p_uncond < 1.0:
        raise EdgegenError(f"p_uncond must be in [0, 1), got {cfg.p_uncond}")
    if cfg.kl_weight < 0:
        raise EdgegenError(f"kl_weight must be >= 0, got {cfg.kl_weight}")
    caption_set(cfg.data.source)


def _trained(cfg: LDMConfig) -> None:
    check(cfg)
    if not cfg.text.vocab or not cfg.latent_scale:
        raise EdgegenError("this ldm config has no trained tokenizer or latent scale: train it first")


def latent_shape(cfg: LDMConfig) -> list[int]:
    g = cfg.data.image_size // DOWNSAMPLE
    return [cfg.vae.latent_channels, g, g]


def roles(cfg: LDMConfig) -> dict[str, RoleSpec]:
    _trained(cfg)
    c, s = cfg.data.channels, cfg.data.image_size
    z = tuple(latent_shape(cfg))
    ctx = TensorSpec("context", ("batch", cfg.text.text_length, cfg.text.width), "float32")
    return {
        "text_encoder": RoleSpec((TensorSpec("tokens", ("batch", cfg.text.text_length), "int64"),), (ctx,)),
        "vae_encoder": RoleSpec((TensorSpec("x", ("batch", c, s, s), "float32"),),
                                (TensorSpec("z", ("batch", *z), "float32"),)),
        "vae_decoder": RoleSpec((TensorSpec("z", ("batch", *z), "float32"),),
                                (TensorSpec("x", ("batch", c, s, s), "float32"),)),
        "denoiser": RoleSpec((TensorSpec("x", ("batch", *z), "float32"), TensorSpec("t", ("batch",), "float32"), ctx),
                             (TensorSpec("eps", ("batch", *z), "float32"),),
                             meta={"time_input": "t", "context_input": "context"}),
    }


def build(cfg: LDMConfig) -> dict[str, torch.nn.Module]:
    """The roles in export order: the denoiser last, as its trajectory gate runs the other roles."""
    check(cfg)
    return {"text_encoder": TextEncoder(cfg.text),
            "vae_encoder": VAEEncoder(cfg.vae, cfg.data.channels),
            "vae_decoder": VAEDecoder(cfg.vae, cfg.data.channels),
            "denoiser": LatentUNet(cfg.denoiser, cfg.vae.latent_channels, cfg.text.width)}


def pipeline_info(cfg: LDMConfig) -> dict:
    """The manifest's stages (docs/notes/latent-stages.md)."""
    _trained(cfg)
    sch, smp = cfg.schedule, cfg.sampling
    scale = float(cfg.latent_scale)
    return {
        "condition": {"kind": "prompt", "tokenizer": {"file": TOKENIZER_FILE, "text_length": cfg.text.text_length},
                      "label_prompts": caption_set(cfg.data.source).label_prompts(),
                      "encoder": {"role": "text_encoder", "input": "tokens", "output": "context"},
                      "null_prompt": ""},
        "generator": {"kind": "plan", "role": "denoiser", "process": "ddpm", "latent_shape": latent_shape(cfg),
                      "schedule": {"kind": sch.kind, "T": sch.T, "beta_start": sch.beta_start, "beta_end": sch.beta_end},
                      "defaults": {"sampler": smp.sampler, "steps": smp.steps, "eta": smp.eta,
                                   "guidance": smp.guidance, "clip_x0": smp.clip_x0},
                      # the gate's trajectory: the default sampler, fewer steps (it runs once per format)
                      "gate": {"sampler": "ddim", "steps": 10, "eta": 0.0},
                      "bundle_plans": [{"sampler": smp.sampler, "steps": smp.steps}, {"sampler": "ddpm"},
                                       *edit_plan_specs({"sampler": smp.sampler, "steps": smp.steps})],
                      "samplers": list(samplers("ddpm"))},
        "decoder": {"role": "vae_decoder", "input": "z", "output": "x", "scale": scale},
        "encoder": {"role": "vae_encoder", "input": "x", "output": "z", "scale": scale},
    }


def data_info(cfg: LDMConfig) -> dict:
    return {"source": cfg.data.source, "shape": [cfg.data.channels, cfg.data.image_size, cfg.data.image_size],
            "range": [-1.0, 1.0], "layout": "NCHW", "num_classes": cfg.num_classes, "null_label": None}


# -- training ---------------------------------------------------------------------------------
class _VAE(torch.nn.Module):
    def __init__(self, enc: VAEEncoder, dec: VAEDecoder):
        super().__init__()
        self.enc, self.dec = enc, dec


class _TextDenoiser(torch.nn.Module):
    def __init__(self, text: TextEncoder, unet: LatentUNet):
        super().__init__()
        self.text, self.unet = text, unet


@torch.no_grad()
def encode(enc: VAEEncoder, images: np.ndarray, batch: int = 512) -> np.ndarray:
    return np.concatenate([enc(torch.from_numpy(images[i:i + batch])).numpy() for i in range(0, len(images), batch)])


@torch.no_grad()
def vae_report(enc: VAEEncoder, dec: VAEDecoder, images: np.ndarray) -> dict:
    """Reconstruction MSE on held-out images (through the posterior mean)."""
    x = torch.from_numpy(images)
    rec = torch.cat([dec(enc(x[i:i + 512])) for i in range(0, len(x), 512)])
    return {"test_mse": float(F.mse_loss(rec, x)), "test_images": len(images)}


def train_vae(cfg: LDMConfig, images: np.ndarray, progress: bool):
    torch.manual_seed(cfg.train.seed)
    model = _VAE(VAEEncoder(cfg.vae, cfg.data.channels), VAEDecoder(cfg.vae, cfg.data.channels))

    def loss_fn(net, batch):
        x = batch[0]
        vae = net.module if hasattr(net, "module") else net
        mu, logvar = vae.enc.moments(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        kl = 0.5 * (mu ** 2 + logvar.exp() - 1.0 - logvar).mean()
        return F.mse_loss(vae.dec(z), x) + cfg.kl_weight * kl

    ema, stats = fit(model, loss_fn, [torch.from_numpy(images)], cfg.train, desc="train vae", progress=progress)
    return ema.enc, ema.dec, stats


def finetune_decoder(cfg: LDMConfig, enc: VAEEncoder, dec: VAEDecoder, images: np.ndarray, progress: bool):
    """Stage 1b: MSE of dec(mu(x)) against x with the encoder frozen; returns the EMA decoder."""
    torch.manual_seed(cfg.decoder_train.seed)
    cfg.decoder_train.threads = cfg.decoder_train.threads or cfg.train.threads
    mu = torch.from_numpy(encode(enc, images))

    def loss_fn(net, batch):
        z, x = batch
        return F.mse_loss(net(z), x)

    net = copy.deepcopy(dec).train().requires_grad_(True)  # the VAE's EMA copy comes frozen
    ema, stats = fit(net, loss_fn, [mu, torch.from_numpy(images)], cfg.decoder_train, desc="fine-tune decoder",
                     progress=progress)
    return ema, stats


def train(cfg: LDMConfig, progress: bool = True) -> tuple[dict[str, torch.nn.Module], dict]:
    from edgegen.runtimes.text import TextEncoder as Tokens
    from edgegen.train.tokenizer import train_tokenizer
    check(cfg)
    caps = caption_set(cfg.data.source)
    data = load_images(cfg.data.source, "train", cfg.data.image_size, cfg.data.channels)
    test = load_images(cfg.data.source, "test", cfg.data.image_size, cfg.data.channels)
    if data.num_classes != len(caps.names):
        raise EdgegenError(f"the ldm recipe captions {len(caps.names)} classes; {cfg.data.source} has {data.num_classes}")
    tok = train_tokenizer(caps.corpus(), cfg.text.vocab_size, ALPHABET)
    cfg.text.vocab = tok.get_vocab_size()
    text = Tokens(tok, cfg.text.text_length)
    longest = max(len(tok.encode(c).ids) for c in caps.corpus() + caps.corpus(held_out=True))
    if longest > cfg.text.text_length:
        raise EdgegenError(f"text.text_length {cfg.text.text_length} is shorter than the longest caption "
                           f"({longest} tokens)")

    cfg.denoiser_train.threads = cfg.denoiser_train.threads or cfg.train.threads
    enc, dec, vae_stats = train_vae(cfg, data.images, progress)
    if cfg.decoder_train.steps > 0:
        vae_stats["test_before_decoder_finetune"] = vae_report(enc, dec, test.images)
        dec, vae_stats["decoder_finetune"] = finetune_decoder(cfg, enc, dec, data.images, progress)
    vae_stats["test"] = vae_report(enc, dec, test.images)
    z = encode(enc, data.images)  # (N, C, h, w) posterior means
    cfg.latent_scale = float(1.0 / z.std())
    z = z * np.float32(cfg.latent_scale)

    r = cfg.text.captions_per_image
    tokens = np.concatenate([text.encode_batch(caps.random_captions(data.labels, cfg.train.seed + k))
                             for k in range(r)])  # (N r, L)
    null = torch.full((cfg.text.text_length,), text.pad_id, dtype=torch.int64)  # the empty prompt
    sch = cfg.schedule
    ab = torch.tensor(alpha_bar(sch.kind, sch.T, sch.beta_start, sch.beta_end), dtype=torch.float32)
    torch.manual_seed(cfg.denoiser_train.seed)
    model = _TextDenoiser(TextEncoder(cfg.text), LatentUNet(cfg.denoiser, cfg.vae.latent_channels, cfg.text.width))

    def loss_fn(net, batch):
        z0, y = batch
        m = net.module if hasattr(net, "module") else net
        b = z0.shape[0]
        drop = torch.rand(b, device=y.device) < cfg.p_uncond  # CFG: the prompt dropped to the empty prompt
        y = torch.where(drop[:, None], null.to(y.device), y)
        t = torch.randint(0, sch.T, (b,), device=z0.device)
        eps = torch.randn_like(z0)
        a = ab.to(z0.device)[t].view(b, 1, 1, 1)
        return F.mse_loss(m.unet(a.sqrt() * z0 + (1 - a).sqrt() * eps, t.float(), m.text(y)), eps)

    ema, den_stats = fit(model, loss_fn, [torch.from_numpy(np.concatenate([z] * r)), torch.from_numpy(tokens)],
                         cfg.denoiser_train, desc="train denoiser", progress=progress)
    den_stats["parameters"] = {"text_encoder": sum(p.numel() for p in ema.text.parameters()),
                               "denoiser": sum(p.numel() for p in ema.unet.parameters())}
    stats = {"vae": vae_stats, "denoiser": den_stats, "latent_scale": cfg.latent_scale,
             "tokenizer_vocab": cfg.text.vocab, "files": {TOKENIZER_FILE: tok.to_str()}}
    modules = {"text_encoder": ema.text, "vae_encoder": enc, "vae_decoder": dec, "denoiser": ema.unet}
    return {k: copy.deepcopy(v).eval() for k, v in modules.items()}, stats
