"""VQ-VAE + class-conditional autoregressive prior (van den Oord et al. 2017).

Two stages, both through the shared training loop:

1. VQ-VAE: encoder, K x D codebook, decoder; loss = recon + codebook + beta * commitment with
   straight-through gradients (vq_nets.py); EMA codebook updates and dead-code restarts optional.
2. Prior: a GPT (transformer.py) over [class token; codes in raster order], trained with
   next-token cross-entropy on the codes of the training images: p(k_1..k_n | y) = prod_i p(k_i | k_<i, y).

Sampling (runtimes/tokens.py): prefill the class token, decode h*w codes with the KV cache, decode
the code grid to an image. Exported roles: ``prior`` (the step network), ``decoder``, ``encoder``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from edgegen.errors import EdgegenError
from edgegen.roles import RoleSpec, TensorSpec
from edgegen.train.data import DataConfig, load_images
from edgegen.train.loop import TrainConfig, fit
from edgegen.train.transformer import GPT, GPTConfig
from edgegen.train.vq_nets import VQVAE, VQConfig, split_roles


@dataclass
class TokenSamplingConfig:
    """Defaults written into the bundle; every one can be changed at sampling time."""
    temperature: float = 1.0
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1 = off


@dataclass
class VQVAEConfig:
    vq: VQConfig = field(default_factory=VQConfig)
    prior: GPTConfig = field(default_factory=GPTConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)  # stage 1 (VQ-VAE)
    prior_train: TrainConfig = field(default_factory=TrainConfig)  # stage 2 (prior)
    sampling: TokenSamplingConfig = field(default_factory=TokenSamplingConfig)
    num_classes: int = 10  # set from the data


def vq_preset(name: str) -> tuple[VQConfig, TrainConfig]:
    """The VQ-VAE stage of a preset (shared with the DALL-E recipe)."""
    if name == "tiny":
        return (VQConfig(channels=16, res_blocks=1, codebook_size=32, code_dim=16),
                TrainConfig(steps=30, batch_size=64, lr=2e-3, warmup=5, ema_decay=0.5))
    if name == "small":  # 8x8 grid: test-set reconstructions classified 99.7% right after 600 steps
        return (VQConfig(channels=64, res_blocks=2, codebook_size=64, code_dim=32),
                TrainConfig(steps=800, batch_size=64, lr=2e-3, warmup=50, ema_decay=0.9))
    if name == "base":
        return (VQConfig(channels=128, res_blocks=2, codebook_size=128, code_dim=64),
                TrainConfig(steps=4000, batch_size=64, lr=1e-3, warmup=100, ema_decay=0.95))
    raise KeyError(name)


def gpt_preset(name: str) -> tuple[GPTConfig, TrainConfig]:
    if name == "tiny":
        return (GPTConfig(n_layer=1, n_head=2, n_embd=32, dropout=0.0),
                TrainConfig(steps=30, batch_size=32, lr=3e-3, warmup=5, ema_decay=0.5))
    if name == "small":
        return (GPTConfig(n_layer=4, n_head=4, n_embd=128, dropout=0.1),
                TrainConfig(steps=1200, batch_size=32, lr=1e-3, warmup=100, ema_decay=0.99, weight_decay=0.01))
    if name == "base":
        return (GPTConfig(n_layer=6, n_head=8, n_embd=256, dropout=0.1),
                TrainConfig(steps=5000, batch_size=64, lr=6e-4, warmup=200, ema_decay=0.995, weight_decay=0.01))
    raise KeyError(name)


PRESETS = ("tiny", "small", "base")


def preset(name: str) -> VQVAEConfig:
    vq, vq_train = vq_preset(name)
    gpt, gpt_train = gpt_preset(name)
    return VQVAEConfig(vq=vq, prior=gpt, train=vq_train, prior_train=gpt_train)


# ----------------------------------------------------------------------------- shapes


def check_vq(vq: VQConfig, data: DataConfig) -> None:
    vq.in_channels, vq.image_size = data.channels, data.image_size
    if data.image_size % (2 ** vq.levels):
        raise EdgegenError(f"image size {data.image_size} must be divisible by 2**levels = {2 ** vq.levels}")
    if vq.codebook_size < 2 or vq.code_dim < 1:
        raise EdgegenError("vq.codebook_size must be >= 2 and vq.code_dim >= 1")
    if not 0.0 <= vq.ema_decay < 1.0:
        raise EdgegenError(f"vq.ema_decay must be in [0, 1), got {vq.ema_decay}")


def check_gpt(g: GPTConfig) -> None:
    if g.n_embd % g.n_head:
        raise EdgegenError(f"n_embd {g.n_embd} must be divisible by n_head {g.n_head}")


def check(cfg: VQVAEConfig) -> None:
    check_vq(cfg.vq, cfg.data)
    check_gpt(cfg.prior)
    n = cfg.vq.grid ** 2
    cfg.prior.vocab_in = cfg.vq.codebook_size + max(cfg.num_classes, 1)  # codes, then one token per class
    cfg.prior.vocab_out = cfg.vq.codebook_size
    cfg.prior.block_size = n  # [y, k_1 .. k_{n-1}] in, k_1 .. k_n out


def vq_roles(vq: VQConfig) -> dict[str, RoleSpec]:
    c, s, g = vq.in_channels, vq.image_size, vq.grid
    return {
        "decoder": RoleSpec(inputs=(TensorSpec("codes", ("batch", g, g), "int64"),),
                            outputs=(TensorSpec("x", ("batch", c, s, s), "float32"),),
                            meta={"code_input": "codes", "codebook_size": vq.codebook_size}),
        "encoder": RoleSpec(inputs=(TensorSpec("x", ("batch", c, s, s), "float32"),),
                            outputs=(TensorSpec("codes", ("batch", g, g), "int64"),)),
    }


def step_role(g: GPTConfig) -> RoleSpec:
    """The step network's interface (KV cache in and out; see transformer.py)."""
    head_dim = g.n_embd // g.n_head
    cache = ("batch", g.n_layer, 2, g.n_head)
    return RoleSpec(
        inputs=(TensorSpec("tokens", ("batch", "seq"), "int64"),
                TensorSpec("past_kv", (*cache, "past", head_dim), "float32")),
        outputs=(TensorSpec("logits", ("batch", "seq", g.vocab_out), "float32"),
                 TensorSpec("present_kv", (*cache, "total", head_dim), "float32")),
        meta={"token_input": "tokens", "vocab_in": g.vocab_in, "block_size": g.block_size,
              "example_dims": {"seq": 5, "past": 3}})


def roles(cfg: VQVAEConfig) -> dict[str, RoleSpec]:
    check(cfg)
    return {"prior": step_role(cfg.prior), **vq_roles(cfg.vq)}


def build_vq(vq: VQConfig) -> dict[str, torch.nn.Module]:
    from edgegen.train.vq_nets import Decode, Encode
    return {"decoder": Decode(vq), "encoder": Encode(vq)}


def build(cfg: VQVAEConfig) -> dict[str, torch.nn.Module]:
    check(cfg)
    return {"prior": GPT(cfg.prior), **build_vq(cfg.vq)}


def token_sampling(s: TokenSamplingConfig) -> dict:
    return {"temperature": s.temperature, "top_k": s.top_k, "top_p": s.top_p}


def sampling_info(cfg: VQVAEConfig) -> dict:
    """The manifest's ``sampling`` section: what the shared token loop needs."""
    check(cfg)
    g = cfg.prior
    return {"kind": "tokens", "role": "prior", "decoder": "decoder", "encoder": "encoder",
            "condition": "label", "label_token_offset": cfg.vq.codebook_size,
            "code_offset": 0, "image_tokens": cfg.vq.grid ** 2, "grid": [cfg.vq.grid, cfg.vq.grid],
            "cache": {"layers": g.n_layer, "heads": g.n_head, "head_dim": g.n_embd // g.n_head},
            "defaults": token_sampling(cfg.sampling)}


def data_info(cfg: VQVAEConfig) -> dict:
    return {"source": cfg.data.source, "shape": [cfg.data.channels, cfg.data.image_size, cfg.data.image_size],
            "range": [-1.0, 1.0], "layout": "NCHW", "num_classes": cfg.num_classes, "null_label": None}


# ----------------------------------------------------------------------------- training


def codebook_stats(codes: np.ndarray, codebook_size: int) -> dict:
    """Usage of the codebook over a set of code grids (any shape of int indices)."""
    counts = np.bincount(np.asarray(codes).reshape(-1), minlength=codebook_size)
    p = counts / max(1, counts.sum())
    nz = p[p > 0]
    dead = np.flatnonzero(counts == 0)
    return {"codebook_size": codebook_size, "codes_used": int((counts > 0).sum()),
            "usage": float((counts > 0).mean()), "perplexity": float(np.exp(-(nz * np.log(nz)).sum())),
            "dead_codes": [int(i) for i in dead]}


@torch.no_grad()
def encode_images(encoder: torch.nn.Module, images: np.ndarray, batch: int = 256) -> np.ndarray:
    """images (N, C, S, S) -> codes (N, h, w) int64."""
    return np.concatenate([encoder(torch.from_numpy(images[i:i + batch])).numpy()
                           for i in range(0, len(images), batch)])


@torch.no_grad()
def decode_codes(decoder: torch.nn.Module, codes: np.ndarray, batch: int = 256) -> np.ndarray:
    return np.concatenate([decoder(torch.from_numpy(codes[i:i + batch])).numpy()
                           for i in range(0, len(codes), batch)])


def vq_report(enc, dec, images: np.ndarray, codebook_size: int) -> dict:
    """Reconstruction error and codebook statistics on ``images``."""
    codes = encode_images(enc, images)
    recon = decode_codes(dec, codes)
    stats = codebook_stats(codes, codebook_size)
    stats["recon_mse"] = float(np.mean((recon - images) ** 2))
    if stats["dead_codes"]:
        stats["warning"] = f"{len(stats['dead_codes'])} of {codebook_size} codes unused (dead)"
    return stats


def train_vq(vq: VQConfig, train_cfg: TrainConfig, images: np.ndarray, progress: bool,
             restart_every: int = 50) -> tuple[torch.nn.Module, torch.nn.Module, dict]:
    """Stage 1: returns (encoder role, decoder role, stats)."""
    torch.manual_seed(train_cfg.seed)
    model = VQVAE(vq)
    usage = torch.zeros(vq.codebook_size)
    step = [0]

    def loss_fn(net, batch):
        x = batch[0]
        _, k, terms = net(x)
        m = net.module if hasattr(net, "module") else net
        if vq.restart_dead:
            usage.add_(torch.bincount(k.reshape(-1).cpu(), minlength=vq.codebook_size).float())
            step[0] += 1
            # Restart during the first 80% of training only, so the last steps settle the codebook.
            if step[0] % restart_every == 0 and step[0] < 0.8 * train_cfg.steps:
                dead = usage == 0
                if dead.any():
                    m.codebook.restart(terms["z_e"].detach(), dead.to(x.device))
                usage.zero_()
        return terms["loss"]

    ema, stats = fit(model, loss_fn, [torch.from_numpy(images)], train_cfg, desc="train vq-vae", progress=progress)
    enc, dec = split_roles(ema)
    stats["parameters"] = sum(p.numel() for p in ema.parameters())
    return enc, dec, stats


def train_gpt(gpt_cfg: GPTConfig, train_cfg: TrainConfig, sequences: np.ndarray, n_prefix: int,
              out_offset: int, progress: bool, desc: str) -> tuple[GPT, dict]:
    """Next-token cross-entropy on the generated part: sequences (N, n_prefix + n) int64.

    The model sees tokens[:, :-1] and is scored on predicting tokens[:, n_prefix:] (the codes),
    i.e. the logits at positions n_prefix-1 .. end; prefix tokens are conditioning only.
    """
    torch.manual_seed(train_cfg.seed)
    model = GPT(gpt_cfg)

    def loss_fn(net, batch):
        seq = batch[0]
        logits = net(seq[:, :-1], _empty(net, seq))[0][:, n_prefix - 1:]  # (B, n, V_out)
        target = seq[:, n_prefix:] - out_offset
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))

    ema, stats = fit(model, loss_fn, [torch.from_numpy(sequences)], train_cfg, desc=desc, progress=progress)
    stats["parameters"] = sum(p.numel() for p in ema.parameters())
    return ema, stats


def _empty(net, seq):
    m = net.module if hasattr(net, "module") else net
    return m.empty_past(seq.shape[0]).to(seq.device)


@torch.no_grad()
def eval_nll(gpt: GPT, sequences: np.ndarray, n_prefix: int, out_offset: int) -> float:
    """Mean next-token cross-entropy (nats per code) on held-out sequences."""
    seq = torch.from_numpy(sequences)
    logits = gpt.logits(seq[:, :-1])[:, n_prefix - 1:]
    target = seq[:, n_prefix:] - out_offset
    return float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1)))


def train(cfg: VQVAEConfig, progress: bool = True) -> tuple[dict[str, torch.nn.Module], dict]:
    data = load_images(cfg.data.source, "train", cfg.data.image_size, cfg.data.channels)
    test = load_images(cfg.data.source, "test", cfg.data.image_size, cfg.data.channels)
    cfg.num_classes = max(data.num_classes, 1)
    check(cfg)
    enc, dec, vq_stats = train_vq(cfg.vq, cfg.train, data.images, progress)
    vq_stats["test"] = vq_report(enc, dec, test.images, cfg.vq.codebook_size)

    def sequences(ds):
        codes = encode_images(enc, ds.images).reshape(len(ds), -1)  # (N, h*w) raster order
        y = (cfg.vq.codebook_size + ds.labels)[:, None]
        return np.concatenate([y, codes], axis=1).astype(np.int64)  # (N, 1 + h*w)

    cfg.prior_train.threads = cfg.prior_train.threads or cfg.train.threads
    prior, prior_stats = train_gpt(cfg.prior, cfg.prior_train, sequences(data), 1, 0, progress, "train prior")
    prior_stats["test_nll_per_code"] = eval_nll(prior, sequences(test), 1, 0)
    return {"prior": prior, "decoder": dec, "encoder": enc}, {"vq": vq_stats, "prior": prior_stats}
