"""Score SDE recipe (Song et al. 2021), VP and VE, on digits (UNet) or moons (MLP).

The network eps_theta(x, t, y) is the score network in the noise parametrisation
s_theta(x, t, y) = -eps_theta(x, t, y) / sigma(t) (Song et al.'s "scale by sigma"):
the division by sigma(t) is a per-step scalar that the float64 plan compiler folds
into its coefficients, so the exported network stays O(1) and the parity gate sees
the same error scale at every t.

Objectives, with x_t = m(t) x_0 + sigma(t) z, t ~ U[eps, 1] and weighting lambda = sigma^2:
    dsm (default, denoising score matching):
        E || sigma s_theta(x_t, t) + z ||^2 = E || eps_theta(x_t, t) - z ||^2
    ssm (sliced score matching, variance-reduced, on the perturbed data x_t):
        E sigma^2 [ v^T grad_x(v^T s_theta(x_t, t)) + 1/2 ||s_theta(x_t, t)||^2 ],  v ~ N(0, I)
        (the tr(grad s) + 1/2 ||s||^2 objective with a random projection; shown on moons)
Samplers (runtimes/sde_plans.py): reverse-SDE Euler-Maruyama, predictor-corrector
(reverse diffusion + Langevin with SNR) and the probability-flow ODE (Euler, Heun).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from edgegen.errors import EdgegenError
from edgegen.runtimes.samplers import get_sampler, samplers
from edgegen.roles import RoleSpec
from edgegen.runtimes.sde_plans import check_corrector
from edgegen.runtimes.sde_schedules import SDE, KINDS
from edgegen.train import continuous as C
from edgegen.train.continuous import DataConfig, shared_preset
from edgegen.train.loop import TrainConfig, fit
from edgegen.train.mlp import MLPConfig
from edgegen.train.unet import UNetConfig


@dataclass
class ProcessConfig:
    kind: str = "vp"  # vp | ve
    beta_min: float = 0.1  # vp
    beta_max: float = 20.0  # vp
    sigma_min: float = 0.01  # ve
    sigma_max: float = 0.0  # ve; 0 = the largest distance between two training samples (Song & Ermon 2020)
    eps: float = 1e-5  # smallest training time


@dataclass
class SamplingConfig:
    """Defaults written into the bundle; every one can be changed at sampling time."""
    sampler: str = "pc"  # em | pc | pf_euler | pf_heun
    steps: int = 100
    snr: float = 0.16  # Langevin corrector signal-to-noise ratio (pc)
    corrector: str = "snr"  # pc corrector step rule: snr (per-sample norms) | fixed (runtimes/sde_plans.py)
    eps: float = 1e-3  # last sampling time (Song et al.: 1e-3 for VP, 1e-5 for VE)
    guidance: float = 1.0


@dataclass
class SDEConfig:
    model: UNetConfig = field(default_factory=lambda: UNetConfig(time_scale=1000.0))
    mlp: MLPConfig = field(default_factory=MLPConfig)
    sde: ProcessConfig = field(default_factory=ProcessConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    objective: str = "dsm"  # dsm | ssm
    p_uncond: float = 0.1


def preset(name: str) -> SDEConfig:
    if name == "tiny":  # for tests: trains in seconds, samples are noise-like
        return SDEConfig(model=UNetConfig(base_channels=16, channel_mults=(1, 2), num_res_blocks=1,
                                          time_scale=1000.0),
                         mlp=MLPConfig(hidden=64, layers=2),
                         train=TrainConfig(steps=60, batch_size=64, lr=2e-3, warmup=10, ema_decay=0.9),
                         sampling=SamplingConfig(steps=20))
    if name == "moons":  # 2-D points: the snr corrector rule diverges there (runtimes/sde_plans.py)
        return SDEConfig(**shared_preset(name), sampling=SamplingConfig(corrector="fixed"))
    if name in ("small", "base"):
        return SDEConfig(**shared_preset(name))
    raise KeyError(name)


PRESETS = ("tiny", "small", "base", "moons")


def check(cfg: SDEConfig) -> None:
    C.check(cfg)
    p = cfg.sde
    if p.kind not in KINDS:
        raise EdgegenError(f"unknown SDE '{p.kind}' (choose {', '.join(KINDS)})")
    if cfg.objective not in ("dsm", "ssm"):
        raise EdgegenError(f"unknown objective '{cfg.objective}' (choose dsm, ssm)")
    if not (0 < p.beta_min < p.beta_max and 0 < p.sigma_min and p.sigma_max >= 0):
        raise EdgegenError("need 0 < sde.beta_min < sde.beta_max, sde.sigma_min > 0, sde.sigma_max >= 0")
    if p.kind == "ve" and 0 < p.sigma_max <= p.sigma_min:
        raise EdgegenError("sde.sigma_max must be larger than sde.sigma_min")
    if not (0 < p.eps < 1 and 0 < cfg.sampling.eps < 1):
        raise EdgegenError("sde.eps and sampling.eps must be in (0, 1)")
    check_corrector(cfg.sampling.corrector)
    get_sampler("sde", cfg.sampling.sampler)  # the registry's one-line error for an unknown name


def process(cfg: SDEConfig) -> SDE:
    p = cfg.sde
    return SDE(p.kind, p.beta_min, p.beta_max, p.sigma_min, p.sigma_max or 50.0)


def build(cfg: SDEConfig) -> dict[str, torch.nn.Module]:
    return {"score": C.build_net(cfg)}


def roles(cfg: SDEConfig) -> dict[str, RoleSpec]:
    spec = C.role_spec(cfg, "eps")
    spec.meta["output"] = "eps = -sigma(t) * score"
    return {"score": spec}


def sampling_info(cfg: SDEConfig) -> dict:
    s = cfg.sampling
    return {"kind": "plan", "role": "score", "process": "sde",
            "schedule": process(cfg).to_json(), "time_range": [s.eps, 1.0],
            "defaults": {"sampler": s.sampler, "steps": s.steps, "snr": s.snr, "corrector": s.corrector,
                         "eps": s.eps, "guidance": s.guidance},
            "gate": {"sampler": "em", "steps": 50},
            "bundle_plans": [{"sampler": s.sampler, "steps": s.steps}, {"sampler": "em", "steps": 50},
                             {"sampler": "pf_euler", "steps": 100}, {"sampler": "pf_heun", "steps": 50}],
            "samplers": list(samplers("sde"))}


def data_info(cfg: SDEConfig) -> dict:
    return C.data_info(cfg)


def max_pairwise_distance(x: torch.Tensor) -> float:
    """Largest Euclidean distance between two training samples (VE sigma_max, Song & Ermon 2020)."""
    flat = x.reshape(len(x), -1).double()
    return float(max(torch.cdist(flat[i:i + 512], flat).max() for i in range(0, len(flat), 512)))


def dsm_loss(net, sde: SDE, x0, y, t) -> torch.Tensor:
    z = torch.randn_like(x0)
    x_t = C.expand(sde.mean_coef(t), x0) * x0 + C.expand(sde.sigma(t), x0) * z
    return ((net(x_t, t, y) - z) ** 2).mean()


def ssm_loss(net, sde: SDE, x0, y, t) -> torch.Tensor:
    sigma = C.expand(sde.sigma(t), x0)
    x_t = (C.expand(sde.mean_coef(t), x0) * x0 + sigma * torch.randn_like(x0)).requires_grad_(True)
    eps = net(x_t, t, y)  # s = -eps / sigma
    v = torch.randn_like(x0)
    (jvp,) = torch.autograd.grad((v * eps).sum(), x_t, create_graph=True)  # grad_x (v^T eps)
    # sigma^2 [v^T grad(v^T s) + 1/2 ||s||^2] = -sigma v^T grad(v^T eps) + 1/2 ||eps||^2
    per_sample = (-(sigma * v * jvp) + 0.5 * eps**2).flatten(1).sum(1)
    return per_sample.mean() / x0[0].numel()


def train(cfg: SDEConfig, progress: bool = True) -> tuple[dict[str, torch.nn.Module], dict]:
    check(cfg)
    tensors = C.training_tensors(cfg)
    if cfg.sde.kind == "ve" and cfg.sde.sigma_max == 0:
        cfg.sde.sigma_max = round(max_pairwise_distance(tensors[0]), 2)
    torch.manual_seed(cfg.train.seed)
    model = C.build_net(cfg)
    sde, null, eps = process(cfg), C.net_config(cfg).null_label, cfg.sde.eps
    objective = dsm_loss if cfg.objective == "dsm" else ssm_loss

    def loss_fn(net: torch.nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
        x0, y = batch
        t = eps + (1 - eps) * torch.rand(x0.shape[0], device=x0.device)
        return objective(net, sde, x0, C.drop_labels(y, cfg.p_uncond, null), t)

    ema, stats = fit(model, loss_fn, tensors, cfg.train, desc=f"train sde-{cfg.sde.kind} ({cfg.objective})",
                     progress=progress)
    stats["parameters"] = sum(p.numel() for p in ema.parameters())
    return {"score": ema}, stats
