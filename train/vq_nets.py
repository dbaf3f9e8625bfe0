"""VQ-VAE networks (van den Oord et al. 2017): conv encoder, K x D codebook, conv decoder.

    z_e = E(x)                         (B, D, h, w), h = w = S / 2**levels
    k   = argmin_j || z_e - e_j ||^2   (B, h, w) code indices
    z_q = e_k                          (B, D, h, w)
    x^  = D(z_q)                       (B, C, S, S)

Loss (the paper's eq. 3):  ||x - x^||^2 + ||sg[z_e] - e||^2 + beta ||z_e - sg[e]||^2, with the
straight-through estimator z_q = z_e + sg[z_q - z_e] carrying the decoder gradient to the encoder.
With ``ema=True`` the codebook term is replaced by exponential moving averages of the assigned
encoder outputs (the paper's appendix; Razavi et al. 2019), so the codebook is a buffer.

The exported roles are :class:`Encode` (image -> code indices) and :class:`Decode`
(code indices -> image); both hold a copy of the codebook.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class VQConfig:
    channels: int = 64  # conv width
    levels: int = 1  # stride-2 downsamplings: the code grid is S / 2**levels on a side
    res_blocks: int = 2
    codebook_size: int = 64  # K
    code_dim: int = 32  # D
    beta: float = 0.25  # commitment weight
    ema: bool = True  # EMA codebook updates instead of the codebook loss term
    ema_decay: float = 0.95
    restart_dead: bool = True  # re-seed codes unused in a batch window from encoder outputs
    in_channels: int = 1
    image_size: int = 16

    @property
    def grid(self) -> int:
        return self.image_size // 2 ** self.levels


class ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.net = nn.Sequential(nn.ReLU(), nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU(), nn.Conv2d(ch, ch, 1))

    def forward(self, x):
        return x + self.net(x)


class EncoderNet(nn.Module):
    """x (B, C, S, S) -> z_e (B, D, S/2^L, S/2^L)."""

    def __init__(self, cfg: VQConfig):
        super().__init__()
        ch = cfg.channels
        layers: list[nn.Module] = [nn.Conv2d(cfg.in_channels, ch, 3, padding=1)]
        for _ in range(cfg.levels):
            layers += [nn.ReLU(), nn.Conv2d(ch, ch, 4, stride=2, padding=1)]
        layers += [ResBlock(ch) for _ in range(cfg.res_blocks)]
        layers += [nn.ReLU(), nn.Conv2d(ch, cfg.code_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class DecoderNet(nn.Module):
    """z_q (B, D, h, w) -> x^ (B, C, S, S), tanh into the data range [-1, 1]."""

    def __init__(self, cfg: VQConfig):
        super().__init__()
        ch = cfg.channels
        layers: list[nn.Module] = [nn.Conv2d(cfg.code_dim, ch, 3, padding=1)]
        layers += [ResBlock(ch) for _ in range(cfg.res_blocks)]
        for _ in range(cfg.levels):
            layers += [nn.ReLU(), nn.ConvTranspose2d(ch, ch, 4, stride=2, padding=1)]
        layers += [nn.ReLU(), nn.Conv2d(ch, cfg.in_channels, 3, padding=1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(z)


class Codebook(nn.Module):
    """The K x D codebook: a parameter (gradient updates) or a buffer (EMA updates)."""

    def __init__(self, cfg: VQConfig):
        super().__init__()
        self.cfg = cfg
        init = torch.randn(cfg.codebook_size, cfg.code_dim) * 0.1
        if cfg.ema:
            self.register_buffer("embed", init)
            self.register_buffer("cluster_size", torch.ones(cfg.codebook_size))
            self.register_buffer("embed_sum", init.clone())
        else:
            self.embed = nn.Parameter(init)

    def indices(self, z_e: torch.Tensor) -> torch.Tensor:
        """Nearest code for every position: z_e (B, D, h, w) -> (B, h, w) int64."""
        b, d, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)  # (B*h*w, D)
        dist = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.embed.t()
                + self.embed.pow(2).sum(1)[None, :])  # (B*h*w, K)
        return dist.argmin(dim=1).view(b, h, w)

    def lookup(self, k: torch.Tensor) -> torch.Tensor:
        """Code vectors: k (B, h, w) -> z_q (B, D, h, w)."""
        return F.embedding(k, self.embed).permute(0, 3, 1, 2)

    @torch.no_grad()
    def ema_update(self, z_e: torch.Tensor, k: torch.Tensor) -> None:
        """Move each used code to the running mean of the encoder outputs assigned to it."""
        cfg, d = self.cfg, z_e.shape[1]
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)
        onehot = F.one_hot(k.reshape(-1), cfg.codebook_size).type_as(flat)  # (N, K)
        self.cluster_size.mul_(cfg.ema_decay).add_(onehot.sum(0), alpha=1 - cfg.ema_decay)
        self.embed_sum.mul_(cfg.ema_decay).add_(onehot.t() @ flat, alpha=1 - cfg.ema_decay)
        n = self.cluster_size.sum()
        size = (self.cluster_size + 1e-5) / (n + cfg.codebook_size * 1e-5) * n  # Laplace smoothing
        self.embed.copy_(self.embed_sum / size[:, None])

    @torch.no_grad()
    def restart(self, z_e: torch.Tensor, dead: torch.Tensor) -> None:
        """Re-seed dead codes (bool (K,)) with random encoder outputs of this batch."""
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, z_e.shape[1])
        n_dead = int(dead.sum())
        pick = flat[torch.randint(0, flat.shape[0], (n_dead,), device=flat.device)]
        self.embed.data[dead] = pick
        if self.cfg.ema:
            self.embed_sum[dead] = pick
            self.cluster_size[dead] = 1.0


class VQVAE(nn.Module):
    """Training wrapper: encoder net, codebook, decoder net and the loss."""

    def __init__(self, cfg: VQConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = EncoderNet(cfg)
        self.codebook = Codebook(cfg)
        self.decoder = DecoderNet(cfg)

    def forward(self, x: torch.Tensor):
        """x (B, C, S, S) -> (x^, k (B, h, w), loss terms dict)."""
        z_e = self.encoder(x)
        k = self.codebook.indices(z_e)
        z_q = self.codebook.lookup(k)
        commit = F.mse_loss(z_e, z_q.detach())
        codebook = torch.zeros((), device=x.device) if self.cfg.ema else F.mse_loss(z_q, z_e.detach())
        if self.training and self.cfg.ema:
            self.codebook.ema_update(z_e, k)
        x_hat = self.decoder(z_e + (z_q - z_e).detach())  # straight-through
        recon = F.mse_loss(x_hat, x)
        return x_hat, k, {"recon": recon, "codebook": codebook, "commit": commit,
                          "loss": recon + codebook + self.cfg.beta * commit, "z_e": z_e}


class Encode(nn.Module):
    """Exported role: image x (B, C, S, S) -> code indices (B, h, w) int64."""

    def __init__(self, cfg: VQConfig):
        super().__init__()
        self.net = EncoderNet(cfg)
        self.codebook = Codebook(cfg)

    def forward(self, x):
        return self.codebook.indices(self.net(x))


class Decode(nn.Module):
    """Exported role: code indices (B, h, w) int64 -> image (B, C, S, S) in [-1, 1]."""

    def __init__(self, cfg: VQConfig):
        super().__init__()
        self.codebook = Codebook(cfg)
        self.net = DecoderNet(cfg)

    def forward(self, codes):  # argument names are the exported input names
        return self.net(self.codebook.lookup(codes))


def split_roles(vq: VQVAE) -> tuple[Encode, Decode]:
    """The trained wrapper's weights as the two exported role modules."""
    enc, dec = Encode(vq.cfg), Decode(vq.cfg)
    enc.net.load_state_dict(vq.encoder.state_dict())
    enc.codebook.load_state_dict(vq.codebook.state_dict())
    dec.codebook.load_state_dict(vq.codebook.state_dict())
    dec.net.load_state_dict(vq.decoder.state_dict())
    return enc.eval(), dec.eval()
