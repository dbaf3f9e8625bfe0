"""DCGAN recipe (Radford et al. 2016), class-conditional, non-saturating loss (Goodfellow et al. 2014).

    L_D = E[softplus(-D(x, y))] + E[softplus(D(G(z, y), y))]
    L_G = E[softplus(-D(G(z, y), y))]           (non-saturating: maximise log D(G(z)))
z ~ N(0, I), labels of the fake batch drawn uniformly. Adam(lr, beta1 = 0.5) as in the
paper; the learning rate follows the shared warmup + cosine schedule (loop.lr_at) and
the exported generator is the EMA of G, whose BatchNorm statistics are recomputed
after training (EMA weights do not match the running statistics of the raw G).
Only G is exported, as role ``generator``: sampling is one call on z from the Philox
stream (plan: init noise into the z register, one step with no time input).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset
from tqdm import tqdm

from edgegen.errors import EdgegenError
from edgegen.roles import RoleSpec, TensorSpec
from edgegen.train.data import DataConfig, load_images
from edgegen.train.dcgan import DCGANConfig, Discriminator, Generator
from edgegen.train.loop import TrainConfig, check_train_config, ema_update, init_distributed, lr_at


@dataclass
class AdamConfig:
    beta1: float = 0.5
    beta2: float = 0.999
    d_lr_scale: float = 1.0  # discriminator lr = train.lr * d_lr_scale


@dataclass
class GANConfig:
    model: DCGANConfig = field(default_factory=DCGANConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    adam: AdamConfig = field(default_factory=AdamConfig)


def preset(name: str) -> GANConfig:
    if name == "tiny":  # for tests: seconds, samples are blobs
        return GANConfig(model=DCGANConfig(latent_dim=16, channels=8, label_dim=8),
                         train=TrainConfig(steps=30, batch_size=64, lr=2e-4, warmup=0, grad_clip=0.0,
                                           ema_decay=0.9))
    if name == "small":  # the demo model: a few minutes on 2 CPU cores
        return GANConfig(model=DCGANConfig(latent_dim=64, channels=64, label_dim=32),
                         train=TrainConfig(steps=4000, batch_size=64, lr=2e-4, warmup=0, grad_clip=0.0,
                                           ema_decay=0.999))
    if name == "base":
        return GANConfig(model=DCGANConfig(latent_dim=100, channels=128, label_dim=64),
                         train=TrainConfig(steps=8000, batch_size=64, lr=2e-4, warmup=0, grad_clip=0.0,
                                           ema_decay=0.999))
    raise KeyError(name)


PRESETS = ("tiny", "small", "base")


def check(cfg: GANConfig) -> None:
    if cfg.data.source == "moons":
        raise EdgegenError("the DCGAN family generates images (digits, folder:PATH), not 2-D moons")
    cfg.model.image_size, cfg.model.in_channels = cfg.data.image_size, cfg.data.channels
    s = cfg.data.image_size
    if s < 8 or s & (s - 1):
        raise EdgegenError(f"DCGAN image size must be a power of two >= 8, got {s}")
    if cfg.model.latent_dim < 1 or cfg.model.channels < 1:
        raise EdgegenError("model.latent_dim and model.channels must be >= 1")


def build(cfg: GANConfig) -> dict[str, torch.nn.Module]:
    return {"generator": Generator(cfg.model)}


def roles(cfg: GANConfig) -> dict[str, RoleSpec]:
    m = cfg.model
    return {"generator": RoleSpec(
        inputs=(TensorSpec("z", ("batch", m.latent_dim), "float32"), TensorSpec("y", ("batch",), "int64")),
        outputs=(TensorSpec("x", ("batch", m.in_channels, m.image_size, m.image_size), "float32"),),
        meta={"label_input": "y"})}


def sampling_info(cfg: GANConfig) -> dict:
    return {"kind": "plan", "role": "generator", "process": "gan", "latent_dim": cfg.model.latent_dim,
            "defaults": {"sampler": "gan", "steps": 1, "guidance": 1.0},
            "gate": {"sampler": "gan", "steps": 1},
            "bundle_plans": [{"sampler": "gan", "steps": 1}], "samplers": ["gan"]}


def data_info(cfg: GANConfig) -> dict:
    # No null label: the generator has no unconditional mode (guidance does not apply).
    return {"source": cfg.data.source, "shape": [cfg.data.channels, cfg.data.image_size, cfg.data.image_size],
            "range": [-1.0, 1.0], "layout": "NCHW", "num_classes": cfg.model.num_classes, "null_label": None}


@torch.no_grad()
def recompute_batchnorm(g: torch.nn.Module, latent_dim: int, num_classes: int, batches: int = 50,
                        batch: int = 256) -> None:
    """Set every BatchNorm's running statistics to the average over fresh generator batches."""
    bns = [m for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    g.train()
    gen = torch.Generator().manual_seed(0)
    for _ in range(batches):
        y = torch.randint(0, max(num_classes, 1), (batch,), generator=gen)
        g(torch.randn(batch, latent_dim, generator=gen), y)
    for m in bns:
        m.momentum = 0.1
    g.eval()


def train(cfg: GANConfig, progress: bool = True) -> tuple[dict[str, torch.nn.Module], dict]:
    check(cfg)
    tc = cfg.train
    check_train_config(tc)
    data = load_images(cfg.data.source, "train", cfg.data.image_size, cfg.data.channels)
    cfg.model.num_classes = data.num_classes
    info = init_distributed()
    if tc.threads > 0:
        torch.set_num_threads(tc.threads)
    torch.manual_seed(tc.seed)  # same initial weights on every rank
    G, D = Generator(cfg.model).to(info.device), Discriminator(cfg.model).to(info.device)
    torch.manual_seed(tc.seed + info.rank)
    ema = copy.deepcopy(G).eval().requires_grad_(False)
    g_net, d_net = G, D
    if info.world > 1:
        ids = [info.device.index] if info.device.type == "cuda" else None
        g_net = torch.nn.parallel.DistributedDataParallel(G, device_ids=ids)
        d_net = torch.nn.parallel.DistributedDataParallel(D, device_ids=ids)
    betas = (cfg.adam.beta1, cfg.adam.beta2)
    opt_g = torch.optim.Adam(G.parameters(), lr=tc.lr, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=tc.lr * cfg.adam.d_lr_scale, betas=betas)

    dataset = TensorDataset(torch.from_numpy(data.images), torch.from_numpy(data.labels.astype(np.int64)))
    per_rank = max(1, tc.batch_size // info.world)
    sampler = DistributedSampler(dataset, num_replicas=info.world, rank=info.rank, shuffle=True,
                                 seed=tc.seed, drop_last=True)
    loader = DataLoader(dataset, batch_size=per_rank, sampler=sampler, drop_last=True)
    if len(loader) == 0:
        raise EdgegenError(f"data set of {len(dataset)} items is smaller than one batch of {per_rank}")
    k = max(data.num_classes, 1)
    bar = tqdm(total=tc.steps, desc="train gan", disable=not (progress and info.main), dynamic_ncols=True)
    step, epoch, avg, t0 = 0, 0, None, time.time()
    while step < tc.steps:
        sampler.set_epoch(epoch)
        for x, y in loader:
            if step >= tc.steps:
                break
            x, y = x.to(info.device), y.to(info.device)
            b = x.shape[0]
            lr = lr_at(step, tc)
            for group in opt_g.param_groups:
                group["lr"] = lr
            for group in opt_d.param_groups:
                group["lr"] = lr * cfg.adam.d_lr_scale
            y_fake = torch.randint(0, k, (b,), device=info.device)
            fake = g_net(torch.randn(b, cfg.model.latent_dim, device=info.device), y_fake)
            # discriminator: real -> 1, fake -> 0
            loss_d = F.softplus(-d_net(x, y)).mean() + F.softplus(d_net(fake.detach(), y_fake)).mean()
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            # generator, non-saturating; D's gradients from this pass are discarded
            loss_g = F.softplus(-d_net(fake, y_fake)).mean()
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            ema_update(ema, G, tc.ema_decay)
            vals = (loss_d.item(), loss_g.item())
            avg = vals if avg is None else tuple(0.98 * a + 0.02 * v for a, v in zip(avg, vals))
            step += 1
            bar.update(1)
            if step % 10 == 0 or step == tc.steps:
                bar.set_postfix(d=f"{avg[0]:.3f}", g=f"{avg[1]:.3f}")
        epoch += 1
    bar.close()
    ema = ema.cpu()
    recompute_batchnorm(ema, cfg.model.latent_dim, data.num_classes)
    stats = {"steps": step, "final_loss_d_ema": avg[0], "final_loss_g_ema": avg[1], "final_loss_ema": avg[1],
             "seconds": time.time() - t0, "world_size": info.world, "device": str(info.device),
             "parameters": sum(p.numel() for p in ema.parameters()),
             "discriminator_parameters": sum(p.numel() for p in D.parameters())}
    return {"generator": ema}, stats
