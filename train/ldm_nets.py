"""The latent diffusion family's networks (Rombach et al. 2022), sized for 32x32 grey images.

- ``VAEEncoder`` / ``VAEDecoder``: a KL-regularised autoencoder, x (1, S, S) <-> z (C, S/4, S/4).
  The encoder role returns the posterior mean (deterministic, so image-to-image is reproducible);
  training draws z = mu + sigma * e from ``moments``.
- ``TextEncoder``: a small bidirectional transformer over the prompt's BPE tokens; its output
  (B, L, D) is the context every denoiser call attends to. An all-padding prompt is the empty
  prompt (the null context of classifier-free guidance).
- ``LatentUNet``: eps_theta(z_t, t, context), ResBlocks (train/unet.py) with a transformer block
  (self-attention, cross-attention to the context, MLP) after each one.

Attention is written with plain matmuls, as in train/unet.py, so every exporter sees simple ops.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from edgegen.train.unet import ResBlock, timestep_embedding


@dataclass
class VAEConfig:
    channels: int = 32  # first level; the second has 2x
    latent_channels: int = 4
    groups: int = 8


@dataclass
class TextConfig:
    text_length: int = 24  # L: prompts right-padded (held-out fashion captions take 20)
    vocab_size: int = 128  # BPE target size (the corpus may give fewer)
    vocab: int = 0  # the trained tokenizer's size (set by training)
    width: int = 64  # D
    layers: int = 2
    heads: int = 4
    captions_per_image: int = 2  # training pairs per image, each with a random template


@dataclass
class DenoiserConfig:
    base_channels: int = 64
    channel_mults: tuple[int, ...] = (1, 2)
    heads: int = 4
    groups: int = 8


def _norm(c: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(groups, c), c)


class VAEEncoder(nn.Module):
    """x (B, 1, S, S) in [-1, 1] -> posterior mean (B, C, S/4, S/4)."""

    def __init__(self, cfg: VAEConfig, in_channels: int = 1):
        super().__init__()
        c, g = cfg.channels, cfg.groups
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, c, 3, padding=1), _norm(c, g), nn.SiLU(),
            nn.Conv2d(c, c, 4, stride=2, padding=1), _norm(c, g), nn.SiLU(),
            nn.Conv2d(c, 2 * c, 3, padding=1), _norm(2 * c, g), nn.SiLU(),
            nn.Conv2d(2 * c, 2 * c, 4, stride=2, padding=1), _norm(2 * c, g), nn.SiLU(),
            nn.Conv2d(2 * c, 2 * c, 3, padding=1), _norm(2 * c, g), nn.SiLU())
        self.moments_out = nn.Conv2d(2 * c, 2 * cfg.latent_channels, 1)

    def moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.moments_out(self.net(x)).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.moments(x)[0]


class VAEDecoder(nn.Module):
    """z (B, C, S/4, S/4) -> x (B, 1, S, S)."""

    def __init__(self, cfg: VAEConfig, out_channels: int = 1):
        super().__init__()
        c, g = cfg.channels, cfg.groups
        self.net = nn.Sequential(
            nn.Conv2d(cfg.latent_channels, 2 * c, 3, padding=1), _norm(2 * c, g), nn.SiLU(),
            nn.Conv2d(2 * c, 2 * c, 3, padding=1), _norm(2 * c, g), nn.SiLU(),
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(2 * c, c, 3, padding=1), _norm(c, g), nn.SiLU(),
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1), _norm(c, g), nn.SiLU(),
            nn.Conv2d(c, out_channels, 3, padding=1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Multi-head attention, plain matmuls. q (B, N, D), k/v (B, M, D) -> (B, N, D)."""
    b, n, d = q.shape
    m, hd = k.shape[1], d // heads
    q = q.reshape(b, n, heads, hd).transpose(1, 2)  # (B, h, N, hd)
    k = k.reshape(b, m, heads, hd).transpose(1, 2)
    v = v.reshape(b, m, heads, hd).transpose(1, 2)
    w = torch.softmax(torch.matmul(q, k.transpose(2, 3)) * hd ** -0.5, dim=-1)  # (B, h, N, M)
    return torch.matmul(w, v).transpose(1, 2).reshape(b, n, d)


class GELU(nn.Module):
    """Exact GELU, x Phi(x), written with erf: torch exports nn.GELU as the opset-20 Gelu op, which
    TensorRT's ONNX parser and older runtimes lack; Erf is supported everywhere."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (1.0 + torch.erf(x * 0.7071067811865476))


class Attention(nn.Module):
    def __init__(self, dim: int, context_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(context_dim, 2 * dim, bias=False)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        k, v = self.kv(context).chunk(2, dim=-1)
        return self.out(attention(self.q(x), k, v, self.heads))


class TransformerBlock(nn.Module):
    """Pre-LN block; with ``context_dim`` it adds cross-attention to the context (the LDM's
    conditioning mechanism, Rombach et al. 2022 Sec. 3.3)."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None):
        super().__init__()
        self.norm1, self.attn1 = nn.LayerNorm(dim), Attention(dim, dim, heads)
        self.cross = context_dim is not None
        if self.cross:
            self.norm2, self.attn2 = nn.LayerNorm(dim), Attention(dim, context_dim, heads)
        self.norm3 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn1(h, h)
        if self.cross:
            x = x + self.attn2(self.norm2(x), context)
        return x + self.mlp(self.norm3(x))


class TextEncoder(nn.Module):
    """tokens (B, L) int64 -> context (B, L, D)."""

    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.tok = nn.Embedding(max(cfg.vocab, 1), cfg.width)
        self.pos = nn.Parameter(torch.zeros(1, cfg.text_length, cfg.width))
        nn.init.normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList([TransformerBlock(cfg.width, cfg.heads) for _ in range(cfg.layers)])
        self.norm = nn.LayerNorm(cfg.width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.tok(tokens) + self.pos
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class SpatialTransformer(nn.Module):
    """A transformer block over the H*W positions of a feature map, attending to the context."""

    def __init__(self, c: int, context_dim: int, heads: int, groups: int):
        super().__init__()
        self.norm = _norm(c, groups)
        self.proj_in, self.proj_out = nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 1)
        self.block = TransformerBlock(c, heads, context_dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        t = self.proj_in(self.norm(x)).reshape(b, c, h * w).transpose(1, 2)  # (B, HW, C)
        t = self.block(t, context).transpose(1, 2).reshape(b, c, h, w)
        return x + self.proj_out(t)


class LatentUNet(nn.Module):
    """eps_theta(z_t, t, context): one ResBlock + SpatialTransformer per level going down, two
    coming up (skip connections as in train/unet.py), a downsample between levels."""

    def __init__(self, cfg: DenoiserConfig, latent_channels: int, context_dim: int):
        super().__init__()
        ch, g = cfg.base_channels, cfg.groups
        temb = 4 * ch
        self.ch = ch
        self.temb = nn.Sequential(nn.Linear(ch, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.conv_in = nn.Conv2d(latent_channels, ch, 3, padding=1)
        widths = [ch * m for m in cfg.channel_mults]
        self.down_res, self.down_attn, self.downsample = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        c, skips = ch, [ch]
        for i, w in enumerate(widths):
            self.down_res.append(ResBlock(c, w, temb, g, 0.0))
            self.down_attn.append(SpatialTransformer(w, context_dim, cfg.heads, g))
            c = w
            skips.append(c)
            if i + 1 < len(widths):
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid1, self.mid_attn = ResBlock(c, c, temb, g, 0.0), SpatialTransformer(c, context_dim, cfg.heads, g)
        self.mid2 = ResBlock(c, c, temb, g, 0.0)
        self.up_res, self.up_attn, self.upsample = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            for _ in range(2):
                self.up_res.append(ResBlock(c + skips.pop(), w, temb, g, 0.0))
                self.up_attn.append(SpatialTransformer(w, context_dim, cfg.heads, g))
                c = w
            if i > 0:
                self.upsample.append(nn.Conv2d(c, c, 3, padding=1))
        self.norm_out, self.conv_out = _norm(c, g), nn.Conv2d(c, latent_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """x: (B, C, h, w) f32 latents, t: (B,) f32 timestep, context: (B, L, D) f32."""
        emb = self.temb(timestep_embedding(t, self.ch))
        h = self.conv_in(x)
        skips = [h]
        for i, (res, attn) in enumerate(zip(self.down_res, self.down_attn)):
            h = attn(res(h, emb), context)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
                skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb), context), emb)
        k = 0
        for j, (res, attn) in enumerate(zip(self.up_res, self.up_attn)):
            h = attn(res(torch.cat([h, skips.pop()], dim=1), emb), context)
            if j % 2 == 1 and k < len(self.upsample):
                h = self.upsample[k](F.interpolate(h, scale_factor=2.0, mode="nearest"))
                k += 1
        return self.conv_out(F.silu(self.norm_out(h)))
