"""DCGAN recipe (Radford et al. 2016), class-conditional, hinge loss (Lim & Ye 2017; Miyato et al. 2018).

    hinge:  L_D = E[relu(1 - D(x, y))] + E[relu(1 + D(G(z, y), y))],  L_G = -E[D(G(z, y), y)]
    ns:     L_D = E[softplus(-D(x, y))] + E[softplus(D(G(z, y), y))], L_G = E[softplus(-D(G(z, y), y))]
z ~ N(0, I), labels of the fake batch drawn uniformly. The discriminator is spectrally
normalized with a minibatch-std feature (dcgan.py); optional R1 penalty on real images
(Mescheder et al. 2018), several D steps per G step, and a mode-seeking term (Mao et al.
2019) that rewards G for mapping different z of one label to different images. Adam with
two time-scales (Heusel et al. 2017: D learns faster than G); the learning rate follows the
shared warmup + cosine schedule (loop.lr_at) and the exported generator is the EMA of G,
whose BatchNorm statistics are recomputed after training (EMA weights do not match the
running statistics of the raw G). The plain recipe (ns loss, BatchNorm D, one lr) collapsed
onto one image per label: see docs/notes/issue-21.md for what each change measured.
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
    d_lr_scale: float = 2.0  # discriminator lr = train.lr * d_lr_scale (two time-scales: D learns faster)


@dataclass
class LossConfig:
    kind: str = "hinge"  # "hinge" or "ns" (non-saturating, the original DCGAN loss)
    r1_gamma: float = 0.0  # R1 penalty weight gamma / 2 * E|grad_x D(x)|^2 on real images; 0 = off
    d_steps: int = 1  # discriminator updates per generator update (each on a fresh real batch)
    mode_seeking: float = 0.0  # weight of the mode-seeking term; 0 = off
    translate: int = 0  # DiffAugment (Zhao et al. 2020): shift D's real and fake inputs by up to this many pixels


LOSSES = ("hinge", "ns")


@dataclass
class GANConfig:
    model: DCGANConfig = field(default_factory=DCGANConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    adam: AdamConfig = field(default_factory=AdamConfig)
    loss: LossConfig = field(default_factory=LossConfig)


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
    if cfg.loss.kind not in LOSSES:
        raise EdgegenError(f"loss.kind must be one of {', '.join(LOSSES)}, got {cfg.loss.kind!r}")
    if cfg.loss.d_steps < 1 or min(cfg.loss.r1_gamma, cfg.loss.mode_seeking, cfg.loss.translate) < 0:
        raise EdgegenError("loss.d_steps must be >= 1; loss.r1_gamma, loss.mode_seeking, loss.translate >= 0")


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


def _forever(loader, sampler):
    """Real batches without end, reshuffled each epoch."""
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def translate(x: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Shift each image by up to max_shift pixels, filling with the background (-1); differentiable, so G
    learns through it. On 1437 digits D otherwise memorizes the training set and its gradients go stale."""
    if max_shift <= 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, value=-1.0)
    off = torch.randint(0, 2 * max_shift + 1, (b, 2), device=x.device)
    rows = (off[:, 0, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (B, 1, H, 1)
    cols = (off[:, 1, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (B, 1, 1, W)
    return padded.gather(2, rows.expand(b, x.shape[1], h, padded.shape[3])).gather(
        3, cols.expand(b, x.shape[1], h, w))


def d_loss(d_net, x, y, fake, y_fake, lc: LossConfig) -> torch.Tensor:
    """Discriminator loss on a real batch (x, y) and a detached fake batch (+ R1 on the reals)."""
    x, fake = translate(x, lc.translate), translate(fake, lc.translate)
    if lc.r1_gamma > 0:
        x = x.detach().requires_grad_(True)
    real_logits, fake_logits = d_net(x, y), d_net(fake, y_fake)
    if lc.kind == "hinge":
        loss = F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    else:
        loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if lc.r1_gamma > 0:
        (grad,) = torch.autograd.grad(real_logits.sum(), x, create_graph=True)
        loss = loss + 0.5 * lc.r1_gamma * grad.pow(2).flatten(1).sum(1).mean()
    return loss


def g_loss(g_net, d_net, b: int, k: int, latent_dim: int, lc: LossConfig, device) -> torch.Tensor:
    """Generator loss on a fresh fake batch; with mode seeking, the batch is pairs (z1, z2) sharing a label
    and the loss gains mode_seeking * mean |z1 - z2| / |G(z1) - G(z2)| (Mao et al. 2019, inverted as there)."""
    y = torch.randint(0, k, (b,), device=device)
    z = torch.randn(b, latent_dim, device=device)
    if lc.mode_seeking > 0:
        half = b // 2
        y[half:2 * half] = y[:half]
    fake = g_net(z, y)
    logits = d_net(translate(fake, lc.translate), y)
    loss = -logits.mean() if lc.kind == "hinge" else F.softplus(-logits).mean()
    if lc.mode_seeking > 0:
        dx = (fake[:half] - fake[half:2 * half]).abs().flatten(1).mean(1)
        dz = (z[:half] - z[half:2 * half]).abs().mean(1)
        loss = loss + lc.mode_seeking * (dz / (dx + 1e-5)).mean()
    return loss


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
    batches = _forever(loader, sampler)
    lc = cfg.loss
    bar = tqdm(total=tc.steps, desc="train gan", disable=not (progress and info.main), dynamic_ncols=True)
    avg, t0 = None, time.time()
    for step in range(tc.steps):
        lr = lr_at(step, tc)
        for group in opt_g.param_groups:
            group["lr"] = lr
        for group in opt_d.param_groups:
            group["lr"] = lr * cfg.adam.d_lr_scale
        for _ in range(lc.d_steps):
            x, y = (t.to(info.device) for t in next(batches))
            b = x.shape[0]
            y_fake = torch.randint(0, k, (b,), device=info.device)
            with torch.no_grad():
                fake = g_net(torch.randn(b, cfg.model.latent_dim, device=info.device), y_fake)
            loss_d = d_loss(d_net, x, y, fake, y_fake, lc)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        loss_g = g_loss(g_net, d_net, b, k, cfg.model.latent_dim, lc, info.device)
        opt_g.zero_grad(set_to_none=True)  # D's gradients from this pass are discarded by its zero_grad
        loss_g.backward()
        opt_g.step()
        ema_update(ema, G, tc.ema_decay)
        vals = (loss_d.item(), loss_g.item())
        avg = vals if avg is None else tuple(0.98 * a + 0.02 * v for a, v in zip(avg, vals))
        bar.update(1)
        if (step + 1) % 10 == 0 or step + 1 == tc.steps:
            bar.set_postfix(d=f"{avg[0]:.3f}", g=f"{avg[1]:.3f}")
    step = tc.steps
    bar.close()
    ema = ema.cpu()
    recompute_batchnorm(ema, cfg.model.latent_dim, data.num_classes)
    stats = {"steps": step, "final_loss_d_ema": avg[0], "final_loss_g_ema": avg[1], "final_loss_ema": avg[1],
             "seconds": time.time() - t0, "world_size": info.world, "device": str(info.device),
             "parameters": sum(p.numel() for p in ema.parameters()),
             "discriminator_parameters": sum(p.numel() for p in D.parameters())}
    return {"generator": ema}, stats
