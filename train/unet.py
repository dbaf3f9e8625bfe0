"""Class-conditional UNet for small images (Ho et al. 2020, with the usual refinements).

eps_theta(x_t, t, y): timestep embedding (sinusoidal + MLP), ResBlocks with GroupNorm
and SiLU, self-attention at the resolutions listed in ``attn_resolutions`` (8x8 by
default), and an optional label embedding whose last row is the null label used
for classifier-free guidance (Ho & Salimans 2022).

Attention is written with plain matmuls (no fused SDPA) so every exporter and
runtime sees the same simple ops.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class UNetConfig:
    in_channels: int = 1
    image_size: int = 16
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (8,)
    num_classes: int = 10  # 0 = unconditional; label index num_classes is the null label
    dropout: float = 0.0
    groups: int = 8
    time_scale: float = 1.0  # t is multiplied by this before the sinusoidal embedding

    @property
    def null_label(self) -> int:
        return self.num_classes


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding. t: (B,) float -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None, :]  # (B, half)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, temb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.temb = nn.Linear(temb_dim, c_out)
        self.norm2 = nn.GroupNorm(min(groups, c_out), c_out)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Single-head self-attention over the H*W positions."""

    def __init__(self, c: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(min(groups, c), c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = nn.Conv2d(c, c, 1)
        self.scale = c ** -0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)  # (B, C, N) each
        attn = torch.softmax(torch.bmm(q.transpose(1, 2), k) * self.scale, dim=-1)  # (B, N, N)
        out = torch.bmm(v, attn.transpose(1, 2)).reshape(b, c, h, w)
        return x + self.proj(out)


class UNet(nn.Module):
    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        ch = cfg.base_channels
        temb_dim = 4 * ch
        self.temb = nn.Sequential(nn.Linear(ch, temb_dim), nn.SiLU(), nn.Linear(temb_dim, temb_dim))
        self.label_emb = nn.Embedding(cfg.num_classes + 1, temb_dim) if cfg.num_classes > 0 else None
        self.conv_in = nn.Conv2d(cfg.in_channels, ch, 3, padding=1)

        self.down = nn.ModuleList()
        chans = [ch]
        res = cfg.image_size
        c_cur = ch
        for level, mult in enumerate(cfg.channel_mults):
            for _ in range(cfg.num_res_blocks):
                c_out = ch * mult
                blocks = nn.ModuleList([ResBlock(c_cur, c_out, temb_dim, cfg.groups, cfg.dropout)])
                if res in cfg.attn_resolutions:
                    blocks.append(SelfAttention(c_out, cfg.groups))
                self.down.append(blocks)
                c_cur = c_out
                chans.append(c_cur)
            if level != len(cfg.channel_mults) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(c_cur, c_cur, 3, stride=2, padding=1)]))
                chans.append(c_cur)
                res //= 2

        self.mid1 = ResBlock(c_cur, c_cur, temb_dim, cfg.groups, cfg.dropout)
        self.mid_attn = SelfAttention(c_cur, cfg.groups)
        self.mid2 = ResBlock(c_cur, c_cur, temb_dim, cfg.groups, cfg.dropout)

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mults))):
            for _ in range(cfg.num_res_blocks + 1):
                c_out = ch * mult
                blocks = nn.ModuleList([ResBlock(c_cur + chans.pop(), c_out, temb_dim, cfg.groups, cfg.dropout)])
                if res in cfg.attn_resolutions:
                    blocks.append(SelfAttention(c_out, cfg.groups))
                self.up.append(blocks)
                c_cur = c_out
            if level != 0:
                self.up.append(nn.ModuleList([nn.Upsample(scale_factor=2, mode="nearest"),
                                              nn.Conv2d(c_cur, c_cur, 3, padding=1)]))
                res *= 2

        self.norm_out = nn.GroupNorm(min(cfg.groups, c_cur), c_cur)
        self.conv_out = nn.Conv2d(c_cur, cfg.in_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) f32, t: (B,) f32 timestep, y: (B,) int64 label (num_classes = null)."""
        temb = self.temb(timestep_embedding(t * self.cfg.time_scale, self.cfg.base_channels))
        if self.label_emb is not None:
            temb = temb + self.label_emb(y)
        h = self.conv_in(x)
        skips = [h]
        for blocks in self.down:
            if isinstance(blocks[0], ResBlock):
                h = blocks[0](h, temb)
                for extra in blocks[1:]:
                    h = extra(h)
            else:
                h = blocks[0](h)
            skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, temb)), temb)
        for blocks in self.up:
            if isinstance(blocks[0], ResBlock):
                h = blocks[0](torch.cat([h, skips.pop()], dim=1), temb)
                for extra in blocks[1:]:
                    h = extra(h)
            else:
                for layer in blocks:
                    h = layer(h)
        return self.conv_out(F.silu(self.norm_out(h)))
