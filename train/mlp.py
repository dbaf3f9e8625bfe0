"""A small MLP for 2-D points: the network of the ``moons`` variants.

f(x, t, y): x (B, D) points, t (B,) continuous time (sinusoidal embedding of t * time_scale),
y (B,) label with a null label at index num_classes (classifier-free guidance, as in unet.py).
Time and label embeddings are added to every hidden layer, so a few hundred units suffice.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from edgegen.train.unet import timestep_embedding


@dataclass
class MLPConfig:
    dim: int = 2
    hidden: int = 256
    layers: int = 3
    num_classes: int = 2  # 0 = unconditional; label index num_classes is the null label
    time_scale: float = 100.0  # t in [0, 1]; the highest embedding frequency is time_scale rad per unit t

    @property
    def null_label(self) -> int:
        return self.num_classes


class MLP(nn.Module):
    def __init__(self, cfg: MLPConfig):
        super().__init__()
        self.cfg = cfg
        h = cfg.hidden
        self.temb = nn.Sequential(nn.Linear(64, h), nn.SiLU(), nn.Linear(h, h))
        self.label_emb = nn.Embedding(cfg.num_classes + 1, h) if cfg.num_classes > 0 else None
        self.inp = nn.Linear(cfg.dim, h)
        self.hidden = nn.ModuleList([nn.Linear(h, h) for _ in range(cfg.layers)])
        self.cond = nn.ModuleList([nn.Linear(h, h) for _ in range(cfg.layers)])
        self.out = nn.Linear(h, cfg.dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x: (B, D) f32, t: (B,) f32, y: (B,) int64 -> (B, D)."""
        emb = self.temb(timestep_embedding(t * self.cfg.time_scale, 64))  # (B, H)
        if self.label_emb is not None:
            emb = emb + self.label_emb(y)
        emb = F.silu(emb)
        h = self.inp(x)
        for lin, cond in zip(self.hidden, self.cond):
            h = h + lin(F.silu(h + cond(emb)))
        return self.out(F.silu(h))
