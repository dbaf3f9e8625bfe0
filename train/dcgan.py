"""Class-conditional DCGAN networks (Radford et al. 2016) for small images.

Generator G(z, y): [z; embed(y)] -> linear -> (4c, 4, 4) -> (ConvTranspose 4x4 s2, BN, ReLU)
per doubling -> 3x3 conv -> tanh, so images are in [-1, 1] like the data.
Discriminator D(x, y): strided 4x4 convs with LeakyReLU(0.2), then a projection head
(Miyato & Koyama 2018) for the label: D = w^T h + embed(y)^T h, one logit per image.
With ``spectral_norm`` every D layer is spectrally normalized (Miyato et al. 2018) instead
of batch-normalized: D stays 1-Lipschitz-ish, which keeps its gradients informative for G
and is what stops the one-mode-per-label collapse of the plain recipe. ``minibatch_std``
appends the batch's feature standard deviation as one more channel (Karras et al. 2018),
so D can tell a batch of near-identical fakes from a varied real batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class DCGANConfig:
    latent_dim: int = 64
    channels: int = 64  # c: width of the last generator / first discriminator layer
    label_dim: int = 32  # generator label embedding size
    image_size: int = 16
    in_channels: int = 1
    num_classes: int = 10  # 0 = unconditional
    spectral_norm: bool = True  # discriminator: spectral norm on every layer, no BatchNorm
    minibatch_std: bool = True  # discriminator: append the batch feature std as a channel


def doublings(image_size: int) -> int:
    """Number of 2x up/down-sampling layers between 4x4 and image_size."""
    return int(round(math.log2(image_size // 4)))


class Generator(nn.Module):
    def __init__(self, cfg: DCGANConfig):
        super().__init__()
        self.cfg = cfg
        n = doublings(cfg.image_size)
        c_top = cfg.channels * 2 ** n
        self.label_emb = nn.Embedding(cfg.num_classes, cfg.label_dim) if cfg.num_classes > 0 else None
        cond = cfg.label_dim if cfg.num_classes > 0 else 0
        self.fc = nn.Linear(cfg.latent_dim + cond, c_top * 16, bias=False)
        self.bn0 = nn.BatchNorm2d(c_top)
        ups = []
        c = c_top
        for _ in range(n):
            ups += [nn.ConvTranspose2d(c, c // 2, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(c // 2),
                    nn.ReLU()]
            c //= 2
        self.ups = nn.Sequential(*ups)
        self.out = nn.Conv2d(c, cfg.in_channels, 3, padding=1)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """z: (B, latent) f32, y: (B,) int64 -> x: (B, C, S, S) in [-1, 1]."""
        h = z if self.label_emb is None else torch.cat([z, self.label_emb(y)], dim=1)
        h = self.fc(h).view(z.shape[0], -1, 4, 4)
        h = self.ups(F.relu(self.bn0(h)))
        return torch.tanh(self.out(h))


def minibatch_std(h: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C + 1, H, W): the mean over features of the across-batch std, broadcast."""
    s = torch.sqrt(h.var(dim=0, unbiased=False) + 1e-8).mean()
    return torch.cat([h, s.expand(h.shape[0], 1, *h.shape[2:])], dim=1)


class Discriminator(nn.Module):
    def __init__(self, cfg: DCGANConfig):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm if cfg.spectral_norm else (lambda m: m)
        n = doublings(cfg.image_size)
        layers = [sn(nn.Conv2d(cfg.in_channels, cfg.channels, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
        c = cfg.channels
        for _ in range(n - 1):
            norm = [] if cfg.spectral_norm else [nn.BatchNorm2d(2 * c)]
            layers += [sn(nn.Conv2d(c, 2 * c, 4, stride=2, padding=1, bias=cfg.spectral_norm)), *norm,
                       nn.LeakyReLU(0.2)]
            c *= 2
        self.body = nn.Sequential(*layers)  # -> (B, c, 4, 4)
        self.mbstd = cfg.minibatch_std
        c += int(cfg.minibatch_std)
        self.head = sn(nn.Linear(c * 16, 1))
        self.label_emb = sn(nn.Embedding(cfg.num_classes, c * 16)) if cfg.num_classes > 0 else None

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x: (B, C, S, S), y: (B,) -> logits (B,)."""
        h = self.body(x)
        h = (minibatch_std(h) if self.mbstd else h).flatten(1)
        out = self.head(h).squeeze(1)
        if self.label_emb is not None:
            out = out + (self.label_emb(y) * h).sum(1)
        return out
