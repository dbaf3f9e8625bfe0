"""DDPM recipe (Ho et al. 2020): epsilon objective, linear/cosine betas, CFG label dropout.

L_simple = E_{x_0, t, eps} || eps - eps_theta(sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, t, y) ||^2
with t ~ U{0..T-1}; labels are replaced by the null label with probability p_uncond
so one network serves conditional and unconditional sampling (classifier-free guidance).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from edgegen.roles import RoleSpec, TensorSpec
from edgegen.runtimes.plans import edit_plan_specs
from edgegen.runtimes.samplers import samplers
from edgegen.runtimes.schedules import alpha_bar
from edgegen.train.data import DataConfig, load_images
from edgegen.train.loop import TrainConfig, fit
from edgegen.train.unet import UNet, UNetConfig


@dataclass
class ScheduleConfig:
    kind: str = "linear"  # linear | cosine
    T: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02


@dataclass
class SamplingConfig:
    """Defaults written into the bundle; every one can be changed at sampling time."""
    sampler: str = "ddim"
    steps: int = 50
    eta: float = 0.0
    guidance: float = 1.0  # classifier-free guidance off by default: best FID (see README)
    clip_x0: bool = True


@dataclass
class DDPMConfig:
    model: UNetConfig = field(default_factory=UNetConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    p_uncond: float = 0.1


def preset(name: str) -> DDPMConfig:
    if name == "tiny":  # for tests: trains in seconds, samples are noise-like
        return DDPMConfig(model=UNetConfig(base_channels=16, channel_mults=(1, 2), num_res_blocks=1),
                          train=TrainConfig(steps=60, batch_size=64, lr=2e-3, warmup=10, ema_decay=0.9))
    if name == "small":  # the demo model: about 10 minutes on 2 CPU cores
        return DDPMConfig(model=UNetConfig(base_channels=32, channel_mults=(1, 2, 2), num_res_blocks=1),
                          train=TrainConfig(steps=1100, batch_size=128, lr=2e-3, warmup=100, ema_decay=0.995))
    if name == "base":  # a few million parameters, for benchmarks
        return DDPMConfig(model=UNetConfig(base_channels=64, channel_mults=(1, 2, 2), num_res_blocks=2),
                          train=TrainConfig(steps=3000, batch_size=128, lr=1e-3, warmup=200, ema_decay=0.999))
    raise KeyError(name)


PRESETS = ("tiny", "small", "base")


def roles(cfg: DDPMConfig) -> dict[str, RoleSpec]:
    c, s = cfg.model.in_channels, cfg.model.image_size
    return {"denoiser": RoleSpec(
        inputs=(TensorSpec("x", ("batch", c, s, s), "float32"),
                TensorSpec("t", ("batch",), "float32"),
                TensorSpec("y", ("batch",), "int64")),
        outputs=(TensorSpec("eps", ("batch", c, s, s), "float32"),),
        meta={"time_input": "t", "label_input": "y"})}


def build(cfg: DDPMConfig) -> dict[str, torch.nn.Module]:
    return {"denoiser": UNet(cfg.model)}


def sampling_info(cfg: DDPMConfig) -> dict:
    """The manifest's ``sampling`` section: what the plan compiler needs, nothing else."""
    return {"kind": "plan", "role": "denoiser", "process": "ddpm",
            "schedule": {"kind": cfg.schedule.kind, "T": cfg.schedule.T,
                         "beta_start": cfg.schedule.beta_start, "beta_end": cfg.schedule.beta_end},
            "defaults": {"sampler": cfg.sampling.sampler, "steps": cfg.sampling.steps,
                         "eta": cfg.sampling.eta, "guidance": cfg.sampling.guidance,
                         "clip_x0": cfg.sampling.clip_x0},
            "gate": {"sampler": "ddim", "steps": 50, "eta": 0.0},  # the parity gate's trajectory
            "bundle_plans": [{"sampler": cfg.sampling.sampler, "steps": cfg.sampling.steps},
                             {"sampler": "ddim", "steps": 50, "eta": 0.0}, {"sampler": "ddpm"},
                             *edit_plan_specs({"sampler": "ddim", "steps": 50, "eta": 0.0})],
            "samplers": list(samplers("ddpm"))}


def check(cfg: DDPMConfig) -> None:
    """Consistency of the sections. The network's input shape follows the data section."""
    from edgegen.errors import EdgegenError
    cfg.model.in_channels, cfg.model.image_size = cfg.data.channels, cfg.data.image_size
    levels = len(cfg.model.channel_mults) - 1
    if cfg.data.image_size % (2 ** levels):
        raise EdgegenError(f"image size {cfg.data.image_size} must be divisible by {2 ** levels} "
                           f"for {levels + 1} UNet levels")
    if cfg.schedule.kind not in ("linear", "cosine"):
        raise EdgegenError(f"unknown beta schedule '{cfg.schedule.kind}' (choose linear, cosine)")
    if not 0.0 <= cfg.p_uncond < 1.0:
        raise EdgegenError(f"p_uncond must be in [0, 1), got {cfg.p_uncond}")


def train(cfg: DDPMConfig, progress: bool = True) -> tuple[dict[str, torch.nn.Module], dict]:
    check(cfg)
    data = load_images(cfg.data.source, "train", cfg.data.image_size, cfg.data.channels)
    if data.num_classes != cfg.model.num_classes:
        cfg.model.num_classes = data.num_classes
    torch.manual_seed(cfg.train.seed)
    model = UNet(cfg.model)
    ab = torch.tensor(alpha_bar(cfg.schedule.kind, cfg.schedule.T, cfg.schedule.beta_start,
                                cfg.schedule.beta_end), dtype=torch.float32)
    null = cfg.model.null_label

    def loss_fn(net: torch.nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
        x0, y = batch  # (B, C, H, W), (B,)
        b = x0.shape[0]
        t = torch.randint(0, cfg.schedule.T, (b,), device=x0.device)
        eps = torch.randn_like(x0)
        a = ab.to(x0.device)[t].view(b, 1, 1, 1)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
        if cfg.p_uncond > 0 and null > 0:
            y = torch.where(torch.rand(b, device=y.device) < cfg.p_uncond, torch.full_like(y, null), y)
        return F.mse_loss(net(x_t, t.float(), y), eps)

    tensors = [torch.from_numpy(data.images), torch.from_numpy(data.labels.astype(np.int64))]
    ema, stats = fit(model, loss_fn, tensors, cfg.train, desc="train ddpm", progress=progress)
    stats["parameters"] = sum(p.numel() for p in ema.parameters())
    return {"denoiser": ema}, stats


def data_info(cfg: DDPMConfig) -> dict:
    """The manifest's ``data`` section: sample layout and value range."""
    return {"source": cfg.data.source, "shape": [cfg.data.channels, cfg.data.image_size, cfg.data.image_size],
            "range": [-1.0, 1.0], "layout": "NCHW",
            "num_classes": cfg.model.num_classes,
            "null_label": cfg.model.null_label if cfg.model.num_classes > 0 else None}
