"""Fast ODE samplers for VP score-SDE models, compiled to plans from the model's own continuous
schedule, in float64 (format: plans.py): DPM-Solver++(2M) (Lu et al. 2022b, "DPM-Solver++",
Algorithm 2) and UniPC (Zhao et al. 2023; ``compile_unipc``), N network calls for N steps.

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
Written here rather than taken from diffusers: its DPMSolverMultistep/UniPCMultistep schedulers are
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
VP_ONLY = ("dpmpp_2m", "unipc")  # the samplers registered here: each refuses a VE SDE


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
    params = {"steps": steps, "eps": float(eps), "spacing": spacing, "clip_x0": bool(clip_x0)}
    return Plan("dpmpp_2m", params, ["x", "eps", "m0", "m1"], [affine("x", [], sde.prior_std)], out, "x")



def _unipc_b(hh: float, order: int) -> np.ndarray:
    """UniPC's b vector for B(h) = e^{hh} - 1 (bh2), hh = -h (data prediction), Zhao et al. 2023."""
    h_phi_1 = np.expm1(hh)
    h_phi_k, fact, b = h_phi_1 / hh - 1.0, 1.0, []
    for k in range(1, order + 1):
        b.append(h_phi_k * fact / h_phi_1)
        fact *= k + 1
        h_phi_k = h_phi_k / hh - 1.0 / fact
    return np.array(b)


def compile_unipc(sde: SDE, steps: int, eps: float, spacing: str = "logsnr", clip_x0: bool = False) -> Plan:
    """UniPC (Zhao et al. 2023), bh2, order 2, data prediction, as diffusers' UniPCMultistepScheduler
    runs it (UniP-2 predictor; UniC corrector of the previous step's order, using the model output at
    the predicted point, so N calls) on the VP SDE's continuous schedule. Registers: x0 ring m0..m2 and
    ``xlast`` (the corrected sample the next corrector restarts from). No lower-order final step (eps > 0)."""
    check_vp(sde, "unipc")
    ts = dpm_grid(sde, steps, eps, spacing)
    alpha, sigma, lam = sde.mean_coef(ts), sde.sigma(ts), vp_lambda(sde, ts)
    m = lambda k: f"m{k % 3}"  # noqa: E731  (the x0 prediction at t_k)
    out = []
    for i in range(steps):
        ops = [affine(m(i), [("x", 1.0 / alpha[i]), ("eps", -sigma[i] / alpha[i])])]
        if clip_x0:
            ops.append({"op": "clip", "dst": m(i), "lo": -1.0, "hi": 1.0})
        if i > 0:  # UniC from xlast = x_{i-1} at t_{i-1} to t_i, of the previous predictor's order
            h = lam[i] - lam[i - 1]
            order = 1 if i == 1 else 2
            b = _unipc_b(-h, order)
            B, phi = np.expm1(-h), np.expm1(-h)
            if order == 1:
                rhos = np.array([0.5])
                extra = []
            else:
                r1 = (lam[i - 2] - lam[i - 1]) / h
                rhos = np.linalg.solve(np.array([[1.0, 1.0], [r1, 1.0]]), b)
                c = -alpha[i] * B * rhos[0] / r1  # times D1 = (m_{i-2} - m_{i-1}) / r1
                extra = [(m(i - 2), c), (m(i - 1), -c)]
            cl = -alpha[i] * B * rhos[-1]  # times D1_t = m_i - m_{i-1}
            ops.append(affine("x", [("xlast", sigma[i] / sigma[i - 1]), (m(i - 1), -alpha[i] * phi - cl)]
                              + extra + [(m(i), cl)]))
        if i + 1 < steps:
            ops.append(affine("xlast", [("x", 1.0)]))
        h = lam[i + 1] - lam[i]
        phi = np.expm1(-h)
        terms = [("x", sigma[i + 1] / sigma[i]), (m(i), -alpha[i + 1] * phi)]
        if i > 0:  # UniP-2: rho = 1/2, D1 = (m_{i-1} - m_i) / r1
            r1 = (lam[i - 1] - lam[i]) / h
            c = -alpha[i + 1] * phi * 0.5 / r1
            terms = [terms[0], (m(i), terms[1][1] - c), (m(i - 1), c)]
        ops.append(affine("x", terms))
        out.append({"t": float(ts[i]), "src": "x", "dst": "eps", "ops": ops})
    coefs = [c for s in out for op in s["ops"] for _, c in op.get("terms", [])]
    if not np.isfinite(coefs).all():
        raise EdgegenError("unipc: a plan coefficient is not finite (eps too small for float64?)")
    params = {"steps": steps, "eps": float(eps), "spacing": spacing, "clip_x0": bool(clip_x0)}
    regs = ["x", "eps", "m0", "m1", "m2", "xlast"]
    return Plan("unipc", params, regs, [affine("x", [], sde.prior_std)], out, "x")

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


@register("sde", "unipc", DPMOptions, default_steps=20,
          summary="UniPC bh2 order 2 (Zhao et al. 2023), VP only, one call per step")
def _unipc(generator: dict, steps: int | None, opt: DPMOptions) -> Plan:
    sde = SDE.from_json(generator["schedule"])
    return compile_unipc(sde, int(steps or 20), float(opt.eps), str(opt.spacing), bool(opt.clip_x0))
