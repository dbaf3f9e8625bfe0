"""DPM-Solver++(2M) (Lu et al. 2022b, "DPM-Solver++", Algorithm 2) for VP score-SDE models,
compiled to plans from the model's own continuous schedule, in float64 (format: plans.py).

The VP SDE's perturbation kernel is x_t = alpha(t) x_0 + sigma(t) z with alpha = m(t) and
sigma(t) = sqrt(1 - m^2) (sde_schedules.py); lambda(t) = log(alpha / sigma) is the half-logSNR.
The network returns eps = -sigma(t) s(x, t) (train/sde.py), so the data prediction is
    x0(x, t) = (x - sigma(t) eps) / alpha(t).
Grid t_0 = 1 > t_1 > ... > t_N = eps (N = steps); step i evaluates the network at t_i, writes
    D_i = x0(x, t_i)                                                (register m0 / m1, alternating)
    h = lambda_{i+1} - lambda_i,  r = h_prev / h
    D = D_i                                   on the first step (first order, DPM-Solver++ 1 = DDIM)
    D = (1 + 1/(2r)) D_i - 1/(2r) D_{i-1}     afterwards (the multistep second-order correction)
    x = (sigma_{i+1} / sigma_i) x + alpha_{i+1} (1 - e^{-h}) D
As in the paper's Algorithm 2 there is no lower-order final step (the last time is eps > 0, so
the last h is finite) and the result is x at t = eps, like every other SDE sampler here.

Spacing (option ``spacing``): ``logsnr`` (default) is uniform in lambda between lambda(1) and
lambda(eps) (Lu et al. recommend it for low-resolution data), mapped back to t by the VP SDE's
closed-form inverse of lambda; ``time`` is the other SDE samplers' grid, uniform in t. On Gaussian
data (tests) uniform-t converges slowly: its last step from t_{N-1} to eps spans most of lambda's range.

Only the ``affine`` op (and ``clip`` with ``clip_x0``) is used, so every runtime runs these plans
unchanged. The VE SDE is refused: this compiler is derived and tested for VP's alpha(t).
Written here rather than taken from diffusers: diffusers' DPMSolverMultistepScheduler is
discrete-time (a beta table over integer timesteps), not the continuous VP SDE of these models.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgegen.errors import EdgegenError
from edgegen.runtimes.plans import Plan, affine
from edgegen.runtimes.samplers import register
from edgegen.runtimes.sde_plans import time_grid
from edgegen.runtimes.sde_schedules import SDE

SPACINGS = ("time", "logsnr")


def vp_lambda(sde: SDE, t):
    """lambda(t) = log(alpha(t) / sigma(t))."""
    return np.log(sde.mean_coef(t)) - np.log(sde.sigma(t))


def vp_inverse_lambda(sde: SDE, lam):
    """t with lambda(t) = lam: log alpha = -1/2 log(1 + e^{-2 lam}) solves
    -(b1 - b0) t^2 / 4 - b0 t / 2 = log alpha (the root in [0, 1]), as in Lu et al.'s code."""
    b0, db = sde.beta_min, sde.beta_max - sde.beta_min
    tmp = 2.0 * db * np.logaddexp(-2.0 * np.asarray(lam, np.float64), 0.0)  # = -4 (b1 - b0) log alpha
    return tmp / (np.sqrt(b0**2 + tmp) + b0) / db


def dpm_grid(sde: SDE, steps: int, eps: float, spacing: str) -> np.ndarray:
    ts = time_grid(steps, eps)
    if spacing == "time":
        return ts
    if spacing != "logsnr":
        raise EdgegenError(f"unknown spacing '{spacing}' (choose {', '.join(SPACINGS)})")
    ts = vp_inverse_lambda(sde, np.linspace(vp_lambda(sde, 1.0), vp_lambda(sde, eps), steps + 1))
    ts[0], ts[-1] = 1.0, eps  # exact ends (the inverse is accurate to ~1e-15)
    return ts


def check_vp(sde: SDE, sampler: str) -> None:
    if sde.kind != "vp":
        raise EdgegenError(f"sampler '{sampler}' needs a VP SDE (it steps on alpha(t) = m(t) < 1); this bundle's "
                           f"SDE is {sde.kind.upper()}: use pc, em, pf_euler or pf_heun")


def compile_dpmpp_2m(sde: SDE, steps: int, eps: float, spacing: str = "logsnr", clip_x0: bool = False) -> Plan:
    check_vp(sde, "dpmpp_2m")
    ts = dpm_grid(sde, steps, eps, spacing)
    alpha, sigma, lam = sde.mean_coef(ts), sde.sigma(ts), vp_lambda(sde, ts)
    out, h_prev = [], None
    for i in range(steps):
        cur, prev = ("m0", "m1") if i % 2 == 0 else ("m1", "m0")
        h = lam[i + 1] - lam[i]
        c = alpha[i + 1] * -np.expm1(-h)  # alpha_{i+1} (1 - e^{-h})
        ops = [affine(cur, [("x", 1.0 / alpha[i]), ("eps", -sigma[i] / alpha[i])])]
        if clip_x0:
            ops.append({"op": "clip", "dst": cur, "lo": -1.0, "hi": 1.0})
        if h_prev is None:
            terms = [("x", sigma[i + 1] / sigma[i]), (cur, c)]
        else:
            r = h_prev / h
            terms = [("x", sigma[i + 1] / sigma[i]), (cur, c * (1 + 0.5 / r)), (prev, -c * 0.5 / r)]
        ops.append(affine("x", terms))
        out.append({"t": float(ts[i]), "src": "x", "dst": "eps", "ops": ops})
        h_prev = h
    coefs = [c for s in out for op in s["ops"] for _, c in op.get("terms", [])]
    if not np.isfinite(coefs).all():
        raise EdgegenError("dpmpp_2m: a plan coefficient is not finite (eps too small for float64?)")
    params = {"steps": steps, "eps": float(eps), "spacing": spacing}
    if clip_x0:
        params["clip_x0"] = True
    return Plan("dpmpp_2m", params, ["x", "eps", "m0", "m1"], [affine("x", [], sde.prior_std)], out, "x")


@dataclass(frozen=True)
class DPMOptions:
    eps: float = 1e-3  # the last time of the grid (the bundle's eps when it has one)
    spacing: str = "logsnr"  # logsnr (uniform in lambda) | time (uniform in t, the other SDE samplers' grid)
    clip_x0: bool = False  # clip every x0 prediction to [-1, 1] (static thresholding)


@register("sde", "dpmpp_2m", DPMOptions, default_steps=20,
          summary="DPM-Solver++(2M), VP only (Lu et al. 2022b), one call per step")
def _dpmpp_2m(generator: dict, steps: int | None, opt: DPMOptions) -> Plan:
    sde = SDE.from_json(generator["schedule"])
    return compile_dpmpp_2m(sde, int(steps or 20), float(opt.eps), str(opt.spacing), bool(opt.clip_x0))
