"""What the continuous-time families (score SDE, flow matching) share.

Both train one network f(x, t, y) with t in [0, 1] on images (UNet) or on 2-D
``moons`` points (MLP): the data section decides which, so ``--data moons`` turns
any preset into the 2-D variant. Labels are dropped to the null label with
probability ``p_uncond`` so one network also serves unconditional sampling (CFG).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from edgegen.errors import EdgegenError
from edgegen.roles import RoleSpec, TensorSpec
from edgegen.train.data import load_images, load_points
from edgegen.train.mlp import MLP
from edgegen.train.loop import TrainConfig
from edgegen.train.unet import UNet, UNetConfig

POINTS = ("moons",)


@dataclass
class DataConfig:
    source: str = "digits"  # digits | folder:PATH | moons (2-D points: selects the MLP network)
    image_size: int = 16
    channels: int = 1
    points: int = 8192  # moons only: size of the training set
    noise: float = 0.05  # moons only: make_moons noise


def is_points(cfg) -> bool:
    return cfg.data.source in POINTS


def net_config(cfg):
    """The config section of the network this data uses (model: UNet, mlp: MLP)."""
    return cfg.mlp if is_points(cfg) else cfg.model


def check(cfg) -> None:
    """The network's input shape follows the data section; one-line errors otherwise."""
    if is_points(cfg):
        cfg.mlp.dim = 2
    else:
        cfg.model.in_channels, cfg.model.image_size = cfg.data.channels, cfg.data.image_size
        levels = len(cfg.model.channel_mults) - 1
        if cfg.data.image_size % (2 ** levels):
            raise EdgegenError(f"image size {cfg.data.image_size} must be divisible by {2 ** levels} "
                               f"for {levels + 1} UNet levels")
    if not 0.0 <= cfg.p_uncond < 1.0:
        raise EdgegenError(f"p_uncond must be in [0, 1), got {cfg.p_uncond}")


def build_net(cfg) -> torch.nn.Module:
    return MLP(cfg.mlp) if is_points(cfg) else UNet(cfg.model)


def training_tensors(cfg) -> list[torch.Tensor]:
    """[x (N, ...) f32, y (N,) i64]; sets the network's num_classes from the data."""
    if is_points(cfg):
        d = load_points(cfg.data.source, "train", cfg.data.points, cfg.data.noise)
        x = d.points
    else:
        d = load_images(cfg.data.source, "train", cfg.data.image_size, cfg.data.channels)
        x = d.images
    net_config(cfg).num_classes = d.num_classes
    return [torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(d.labels.astype(np.int64))]


def sample_shape(cfg) -> list[int]:
    return [2] if is_points(cfg) else [cfg.data.channels, cfg.data.image_size, cfg.data.image_size]


def role_spec(cfg, output: str) -> RoleSpec:
    """f(x, t, y) -> output, all shaped like the sample."""
    shape = ("batch", *sample_shape(cfg))
    return RoleSpec(inputs=(TensorSpec("x", shape, "float32"), TensorSpec("t", ("batch",), "float32"),
                            TensorSpec("y", ("batch",), "int64")),
                    outputs=(TensorSpec(output, shape, "float32"),),
                    meta={"time_input": "t", "label_input": "y"})


def data_info(cfg) -> dict:
    k = net_config(cfg).num_classes
    info = {"source": cfg.data.source, "shape": sample_shape(cfg), "num_classes": k,
            "null_label": k if k > 0 else None}
    if is_points(cfg):
        info.update({"layout": "ND", "range": None, "noise": cfg.data.noise})
    else:
        info.update({"layout": "NCHW", "range": [-1.0, 1.0]})
    return info


def drop_labels(y: torch.Tensor, p_uncond: float, null: int) -> torch.Tensor:
    """Replace labels by the null label with probability p_uncond (classifier-free guidance)."""
    if p_uncond <= 0 or null <= 0:
        return y
    return torch.where(torch.rand(y.shape[0], device=y.device) < p_uncond, torch.full_like(y, null), y)


def expand(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, ...) broadcastable against ``like``."""
    return v.view(-1, *([1] * (like.dim() - 1)))


def shared_preset(name: str) -> dict:
    """The small, base and moons presets score SDE and flow matching share (config fields)."""
    if name == "small":  # the demo model: ~7 min on 2 free cores (benchmarks/train_time.md)
        return dict(model=UNetConfig(base_channels=32, channel_mults=(1, 2, 2), num_res_blocks=1, time_scale=1000.0),
                    train=TrainConfig(steps=1100, batch_size=128, lr=2e-3, warmup=100, ema_decay=0.995))
    if name == "base":
        return dict(model=UNetConfig(base_channels=64, channel_mults=(1, 2, 2), num_res_blocks=2, time_scale=1000.0),
                    train=TrainConfig(steps=3000, batch_size=128, lr=1e-3, warmup=200, ema_decay=0.999))
    if name == "moons":  # the 2-D variant: an MLP on moons, 3-5 min on 1 busy thread
        return dict(data=DataConfig(source="moons"),
                    train=TrainConfig(steps=4000, batch_size=512, lr=2e-3, warmup=100, ema_decay=0.995))
    raise KeyError(name)
