"""Score SDE samplers (Song et al. 2021) compiled to plans (format: plans.py), in float64.

The network returns eps = -sigma(t) s(x, t) (train/sde.py), so every use of the score
s = -eps / sigma(t) becomes a coefficient on the ``eps`` register. Time runs on the grid
t_0 = 1 > t_1 > ... > t_N = eps (N = steps), dt_i = t_{i+1} - t_i < 0; step i evaluates
the network at t_i. As in Song et al., the last update returns the mean (no noise).

    em        reverse-SDE Euler-Maruyama: x += (f_i x - g_i^2 s) dt + g_i sqrt(|dt|) z
    pc        predictor-corrector (Alg. 4 VE / Alg. 5 VP), per t_i: one Langevin corrector
              step x += e s + sqrt(2 e) z, then the reverse-diffusion predictor
              x = x - F_i(x) + G_i^2 s + G_i z for the forward discretisation
              x_{i} = x_{i+1} + F_i(x_{i+1}) + G_i z:
                VP: 1 - b_i = (m(t_i) / m(t_{i+1}))^2 (exact on the grid), F_i(x) = (sqrt(1 - b_i) - 1) x,
                    G_i^2 = b_i, corrector alpha_i = 1 - b_i
                VE: F_i = 0, G_i^2 = sigma_i^2 - sigma_{i+1}^2, corrector alpha_i = 1
              The corrector step size e_i comes from one of two rules (option ``corrector``):
                snr    (default) Song et al.: e = 2 alpha_i (r ||z|| / ||s||)^2 per sample, the named
                       op "langevin"; right for images, where both norms concentrate
                fixed  the annealed-Langevin rule (Song & Ermon 2019), the expectation of the snr rule
                       when ||z||^2 ~ d and ||s||^2 ~ d / sigma_i^2: e = 2 alpha_i (r sigma_i)^2, a plain
                       affine op. In very few dimensions (2-D points) the per-sample norms are noise:
                       ||z|| of a 2-D Gaussian is often near 0 or 3 and ||s|| vanishes on the data
                       manifold, so the snr rule takes huge steps there and diverges.
    pf_euler  probability-flow ODE dx/dt = f x - 1/2 g^2 s = a_t x + b_t eps, Euler
    pf_heun   the same ODE with Heun's method (2 evaluations per step)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgegen.errors import EdgegenError
from edgegen.runtimes.plans import Plan, affine
from edgegen.runtimes.samplers import register
from edgegen.runtimes.sde_schedules import SDE

CORRECTORS = ("snr", "fixed")


def time_grid(steps: int, eps: float) -> np.ndarray:
    if steps < 1:
        raise EdgegenError(f"steps must be >= 1, got {steps}")
    if not 0 < eps < 1:
        raise EdgegenError(f"eps must be in (0, 1), got {eps}")
    return np.linspace(1.0, eps, steps + 1, dtype=np.float64)


def _prior(sde: SDE) -> list[dict]:
    return [affine("x", [], sde.prior_std)]


def compile_em(sde: SDE, steps: int, eps: float) -> Plan:
    ts = time_grid(steps, eps)
    out = []
    for i in range(steps):
        t, dt = ts[i], ts[i + 1] - ts[i]
        last = i + 1 == steps
        noise = 0.0 if last else np.sqrt(sde.g2(t) * -dt)
        out.append({"t": float(t), "src": "x", "dst": "eps", "ops": [
            affine("x", [("x", 1 + sde.drift_coef(t) * dt), ("eps", sde.g2(t) * dt / sde.sigma(t))], noise)]})
    return Plan("em", {"steps": steps, "eps": float(eps)}, ["x", "eps"], _prior(sde), out, "x")


def check_corrector(rule: str) -> None:
    if rule not in CORRECTORS:
        raise EdgegenError(f"unknown corrector '{rule}' (choose {', '.join(CORRECTORS)})")


def _corrector(sigma: float, snr: float, alpha: float, rule: str) -> dict:
    if rule == "snr":
        return {"op": "langevin", "dst": "x", "score": "eps", "scale": float(-1.0 / sigma),
                "snr": float(snr), "alpha": float(alpha)}
    step = 2.0 * alpha * (snr * sigma) ** 2  # x += step s + sqrt(2 step) z, s = -eps / sigma
    return affine("x", [("x", 1.0), ("eps", -step / sigma)], np.sqrt(2.0 * step))


def compile_pc(sde: SDE, steps: int, eps: float, snr: float, corrector: str = "snr") -> Plan:
    if snr <= 0:
        raise EdgegenError(f"snr must be > 0, got {snr}")
    check_corrector(corrector)
    ts = time_grid(steps, eps)
    out = []
    for i in range(steps):
        t, t_next = ts[i], ts[i + 1]
        sigma = sde.sigma(t)
        if sde.kind == "vp":
            b = 1.0 - (sde.mean_coef(t) / sde.mean_coef(t_next)) ** 2
            c_x, G2, alpha = 2.0 - np.sqrt(1.0 - b), b, 1.0 - b
        else:
            c_x, G2, alpha = 1.0, sigma**2 - sde.sigma(t_next) ** 2, 1.0
        last = i + 1 == steps
        out.append({"t": float(t), "src": "x", "dst": "eps", "ops": [_corrector(sigma, snr, alpha, corrector)]})
        out.append({"t": float(t), "src": "x", "dst": "eps", "ops": [
            affine("x", [("x", c_x), ("eps", -G2 / sigma)], 0.0 if last else np.sqrt(G2))]})
    params = {"steps": steps, "eps": float(eps), "snr": float(snr)}
    if corrector != "snr":
        params["corrector"] = corrector
    return Plan("pc", params, ["x", "eps"], _prior(sde), out, "x")


def _ode_coefs(sde: SDE, t: float) -> tuple[float, float]:
    """dx/dt = a x + b eps with a = f(t), b = g(t)^2 / (2 sigma(t))."""
    return float(sde.drift_coef(t)), float(sde.g2(t) / (2 * sde.sigma(t)))


def compile_pf(sde: SDE, steps: int, eps: float, method: str) -> Plan:
    ts = time_grid(steps, eps)
    out = []
    for i in range(steps):
        t, t_next = ts[i], ts[i + 1]
        dt = t_next - t
        a, b = _ode_coefs(sde, t)
        if method == "euler":
            out.append({"t": float(t), "src": "x", "dst": "eps",
                        "ops": [affine("x", [("x", 1 + a * dt), ("eps", b * dt)])]})
            continue
        a2, b2 = _ode_coefs(sde, t_next)
        out.append({"t": float(t), "src": "x", "dst": "eps", "ops": [
            affine("d", [("x", a), ("eps", b)]),
            affine("x1", [("x", 1.0), ("d", dt)])]})
        out.append({"t": float(t_next), "src": "x1", "dst": "eps", "ops": [
            affine("x", [("x", 1.0), ("d", dt / 2), ("x1", a2 * dt / 2), ("eps", b2 * dt / 2)])]})
    regs = ["x", "eps"] if method == "euler" else ["x", "eps", "d", "x1"]
    return Plan(f"pf_{method}", {"steps": steps, "eps": float(eps)}, regs, _prior(sde), out, "x")


@dataclass(frozen=True)
class EMOptions:
    eps: float = 1e-3  # the last time of the grid (the model's trained time range starts there)


@dataclass(frozen=True)
class PCOptions:
    eps: float = 1e-3
    snr: float = 0.16  # Langevin corrector signal-to-noise ratio r
    corrector: str = "snr"  # step rule: snr (per-sample norms) or fixed (annealed)


def _grid_args(generator: dict, steps: int | None, opt) -> tuple[SDE, int, float]:
    """The process, the steps (the bundle's when not given: every SDE sampler shares them) and eps."""
    return (SDE.from_json(generator["schedule"]), int(steps or generator.get("defaults", {}).get("steps", 100)),
            float(opt.eps))


@register("sde", "em", EMOptions, summary="reverse-SDE Euler-Maruyama")
def _em(generator: dict, steps: int | None, opt: EMOptions) -> Plan:
    return compile_em(*_grid_args(generator, steps, opt))


@register("sde", "pc", PCOptions, summary="predictor-corrector: reverse diffusion + one Langevin step")
def _pc(generator: dict, steps: int | None, opt: PCOptions) -> Plan:
    return compile_pc(*_grid_args(generator, steps, opt), float(opt.snr), str(opt.corrector))


@register("sde", "pf_euler", EMOptions, summary="probability-flow ODE, Euler")
def _pf_euler(generator: dict, steps: int | None, opt: EMOptions) -> Plan:
    return compile_pf(*_grid_args(generator, steps, opt), "euler")


@register("sde", "pf_heun", EMOptions, summary="probability-flow ODE, Heun (2 calls per step)")
def _pf_heun(generator: dict, steps: int | None, opt: EMOptions) -> Plan:
    return compile_pf(*_grid_args(generator, steps, opt), "heun")
