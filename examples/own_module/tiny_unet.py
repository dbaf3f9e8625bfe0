"""A user's own denoiser, written without edgegen: a small class-conditional UNet.

The only contract edgegen needs (``edgegen import --module tiny_unet.py:TinyUNet``):
forward(x, t, y) with x (B, C, H, W) float32, t (B,) float32 the scheduler's timestep, y (B,)
int64 labels (optional) (index ``num_classes`` = no label, for classifier-free guidance), returning the
prediction the scheduler config declares (here eps), shaped like x. The file is self-contained
(torch only), so edgegen can store its source in the bundle for the torch backend.
"""
import math

import torch
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of t (B,) -> (B, dim), as in DDPM."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class Block(nn.Module):
    """Two 3x3 convolutions with GroupNorm and SiLU, the embedding added in between, residual."""

    def __init__(self, cin: int, cout: int, emb: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(min(8, cin), cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.proj = nn.Linear(emb, cout)
        self.norm2, self.conv2 = nn.GroupNorm(min(8, cout), cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x, e):
        h = self.conv1(nn.functional.silu(self.norm1(x)))
        h = h + self.proj(e)[:, :, None, None]
        h = self.conv2(nn.functional.silu(self.norm2(h)))
        return h + self.skip(x)


class TinyUNet(nn.Module):
    def __init__(self, in_channels: int = 1, width: int = 32, num_classes: int = 10, emb: int = 64):
        super().__init__()
        self.emb = emb
        self.time = nn.Sequential(nn.Linear(emb, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.label = nn.Embedding(num_classes + 1, emb)  # the last index: no label
        self.inc = nn.Conv2d(in_channels, width, 3, padding=1)
        self.down = Block(width, width, emb)
        self.pool = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.mid = Block(2 * width, 2 * width, emb)
        self.up = nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1)
        self.dec = Block(2 * width, width, emb)
        self.out = nn.Sequential(nn.GroupNorm(min(8, width), width), nn.SiLU(), nn.Conv2d(width, in_channels, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        e = self.time(timestep_embedding(t, self.emb))
        if y is not None:  # imported without --num-classes, edgegen calls forward(x, t)
            e = e + self.label(y)
        h0 = self.down(self.inc(x), e)  # (B, w, H, W)
        h = self.mid(self.pool(h0), e)  # (B, 2w, H/2, W/2)
        h = self.dec(torch.cat([self.up(h), h0], dim=1), e)  # (B, w, H, W)
        return self.out(h)
