"""Flow matching recipe (Lipman et al. 2023): conditional OT path, CFM loss, v(x, t, y).

Noise x_0 ~ N(0, I) at t = 0, data x_1 at t = 1. The conditional OT Gaussian path
(Lipman et al. eq. 20-23) with sigma_min:
    psi_t(x_0) = (1 - (1 - sigma_min) t) x_0 + t x_1
    L_CFM = E_{t ~ U[0,1], x_1, x_0} || v_theta(psi_t(x_0), t, y) - (x_1 - (1 - sigma_min) x_0) ||^2
Sampling integrates dx/dt = v(x, t, y) from t = 0 to 1 with fixed-step Euler, Heun or
RK4 plans (runtimes/flow_plans.py). On ``moons`` the network is an MLP (continuous.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from edgegen.errors import EdgegenError
from edgegen.runtimes.samplers import get_sampler, samplers
from edgegen.roles import RoleSpec
from edgegen.train import continuous as C
from edgegen.train.continuous import DataConfig, shared_preset
from edgegen.train.loop import TrainConfig, fit
from edgegen.train.mlp import MLPConfig
from edgegen.train.unet import UNetConfig


@dataclass
class PathConfig:
    sigma_min: float = 1e-4  # std of the path at t = 1 around the data point


@dataclass
class SamplingConfig:
    """Defaults written into the bundle; every one can be changed at sampling time."""
    sampler: str = "rk4"  # euler | heun | rk4
    steps: int = 20
    guidance: float = 1.0


@dataclass
class FlowConfig:
    model: UNetConfig = field(default_factory=lambda: UNetConfig(time_scale=1000.0))
    # a field smooth in t keeps fixed-step solvers accurate (RK4-20 within 5e-5 of dopri5 on moons)
    mlp: MLPConfig = field(default_factory=lambda: MLPConfig(time_scale=20.0))
    path: PathConfig = field(default_factory=PathConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    p_uncond: float = 0.1


def preset(name: str) -> FlowConfig:
    if name == "tiny":  # for tests: trains in seconds, samples are blurry
        return FlowConfig(model=UNetConfig(base_channels=16, channel_mults=(1, 2), num_res_blocks=1,
                                           time_scale=1000.0),
                          mlp=MLPConfig(hidden=64, layers=2, time_scale=20.0),
                          train=TrainConfig(steps=60, batch_size=64, lr=2e-3, warmup=10, ema_decay=0.9))
    if name in ("small", "base", "moons"):
        return FlowConfig(**shared_preset(name))
    raise KeyError(name)


PRESETS = ("tiny", "small", "base", "moons")


def check(cfg: FlowConfig) -> None:
    C.check(cfg)
    if not 0.0 <= cfg.path.sigma_min < 1.0:
        raise EdgegenError(f"path.sigma_min must be in [0, 1), got {cfg.path.sigma_min}")
    get_sampler("flow", cfg.sampling.sampler)  # the registry's one-line error for an unknown name


def build(cfg: FlowConfig) -> dict[str, torch.nn.Module]:
    return {"velocity": C.build_net(cfg)}


def roles(cfg: FlowConfig) -> dict[str, RoleSpec]:
    return {"velocity": C.role_spec(cfg, "v")}


def sampling_info(cfg: FlowConfig) -> dict:
    s = cfg.sampling
    return {"kind": "plan", "role": "velocity", "process": "flow",
            "schedule": {"kind": "ot", "sigma_min": cfg.path.sigma_min, "t0": 0.0, "t1": 1.0},
            "time_range": [0.0, 1.0],
            "defaults": {"sampler": s.sampler, "steps": s.steps, "guidance": s.guidance},
            "gate": {"sampler": s.sampler, "steps": s.steps},
            "bundle_plans": [{"sampler": "euler", "steps": 50}, {"sampler": "heun", "steps": 25},
                             {"sampler": "rk4", "steps": 20}],
            "samplers": list(samplers("flow"))}


def data_info(cfg: FlowConfig) -> dict:
    return C.data_info(cfg)


def cfm_loss(net: torch.nn.Module, x1: torch.Tensor, y: torch.Tensor, sigma_min: float) -> torch.Tensor:
    """Lipman et al. eq. 23 on a batch: x1 (B, ...) data, y (B,) labels."""
    t = torch.rand(x1.shape[0], device=x1.device)  # (B,)
    x0 = torch.randn_like(x1)
    tt = C.expand(t, x1)
    psi = (1 - (1 - sigma_min) * tt) * x0 + tt * x1
    u = x1 - (1 - sigma_min) * x0
    return F.mse_loss(net(psi, t, y), u)


def train(cfg: FlowConfig, progress: bool = True) -> tuple[dict[str, torch.nn.Module], dict]:
    check(cfg)
    tensors = C.training_tensors(cfg)
    torch.manual_seed(cfg.train.seed)
    model = C.build_net(cfg)
    null = C.net_config(cfg).null_label

    def loss_fn(net: torch.nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
        x1, y = batch
        return cfm_loss(net, x1, C.drop_labels(y, cfg.p_uncond, null), cfg.path.sigma_min)

    ema, stats = fit(model, loss_fn, tensors, cfg.train, desc="train flow", progress=progress)
    stats["parameters"] = sum(p.numel() for p in ema.parameters())
    return {"velocity": ema}, stats
