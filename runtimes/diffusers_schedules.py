"""diffusers scheduler configs read as float64 schedules (the tables diffusers_plans.py compiles).

A sampler compiled from a stored config means what diffusers does with
``SchedulerClass.from_config(config)`` for that sampler's class: keys the class does not read
are ignored, keys it reads but the config lacks take that class's defaults (so a DDIM config
switched to Euler keeps its betas and spacing, as in diffusers). Every value that changes the
math is either handled here by name or refused with one line naming what is supported.

Notation: alpha_bar_t (diffusers ``alphas_cumprod``), VP sample x_t = sqrt(alpha_bar) x0 +
sqrt(1 - alpha_bar) eps, and the "k-diffusion" sigma_t = sqrt((1 - alpha_bar) / alpha_bar), the
noise level of x_t / sqrt(alpha_bar) = x0 + sigma eps that Euler-type schedulers integrate.
"""
from __future__ import annotations

import math

import numpy as np

from edgegen.errors import EdgegenError

_BETA = dict(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
             trained_betas=None, prediction_type="epsilon", steps_offset=0, rescale_betas_zero_snr=False,
             thresholding=False)
_SIGMAS = dict(use_karras_sigmas=False, use_exponential_sigmas=False, use_beta_sigmas=False)

# The keys each class reads that change the math, with that class's defaults (diffusers 0.3x).
CLASS_DEFAULTS: dict[str, dict] = {
    "DDPMScheduler": {**_BETA, "variance_type": "fixed_small", "clip_sample": True, "clip_sample_range": 1.0,
                      "timestep_spacing": "leading"},
    "DDIMScheduler": {**_BETA, "clip_sample": True, "clip_sample_range": 1.0, "set_alpha_to_one": True,
                      "timestep_spacing": "leading"},
    "EulerDiscreteScheduler": {**_BETA, **_SIGMAS, "interpolation_type": "linear", "sigma_min": None,
                               "sigma_max": None, "timestep_spacing": "linspace", "timestep_type": "discrete",
                               "final_sigmas_type": "zero"},
    "EulerAncestralDiscreteScheduler": {**_BETA, "timestep_spacing": "linspace"},
    "HeunDiscreteScheduler": {**_BETA, **_SIGMAS, "beta_start": 0.00085, "beta_end": 0.012,
                              "clip_sample": False, "clip_sample_range": 1.0, "timestep_spacing": "linspace"},
    "DPMSolverMultistepScheduler": {**_BETA, **_SIGMAS, "solver_order": 2, "algorithm_type": "dpmsolver++",
                                    "solver_type": "midpoint", "lower_order_final": True, "euler_at_final": False,
                                    "use_lu_lambdas": False, "use_flow_sigmas": False, "final_sigmas_type": "zero",
                                    "lambda_min_clipped": -math.inf, "variance_type": None,
                                    "timestep_spacing": "linspace", "use_dynamic_shifting": False},
    "UniPCMultistepScheduler": {**_BETA, **_SIGMAS, "solver_order": 2, "predict_x0": True, "solver_type": "bh2",
                                "lower_order_final": True, "disable_corrector": [], "solver_p": None,
                                "use_flow_sigmas": False, "timestep_spacing": "linspace", "final_sigmas_type": "zero",
                                "use_dynamic_shifting": False, "sigma_min": None, "sigma_max": None},
    "LCMScheduler": {**_BETA, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
                     "original_inference_steps": 50, "clip_sample": False, "clip_sample_range": 1.0,
                     "set_alpha_to_one": True, "timestep_spacing": "leading", "timestep_scaling": 10.0},
    "FlowMatchEulerDiscreteScheduler": {"num_train_timesteps": 1000, "shift": 1.0, "use_dynamic_shifting": False,
                                        "invert_sigmas": False, "shift_terminal": None, **_SIGMAS,
                                        "stochastic_sampling": False},
}
# Classes whose configs may be the source of a plan: the ones above, and beta-schedule classes
# edgegen has no sampler of its own for (their betas and spacing still compile to the others).
SOURCE_CLASSES = tuple(CLASS_DEFAULTS) + ("PNDMScheduler", "LMSDiscreteScheduler")
FLOW_CLASSES = ("FlowMatchEulerDiscreteScheduler",)

# Accepted values of the keys that change the math ("any" keys are numbers, checked where used).
_CHOICES = {
    "prediction_type": ("epsilon", "v_prediction", "sample"),
    "beta_schedule": ("linear", "scaled_linear", "squaredcos_cap_v2"),
    "timestep_spacing": ("leading", "trailing", "linspace"),
    "final_sigmas_type": ("zero", "sigma_min"),
    "variance_type": ("fixed_small", "fixed_small_log", "fixed_large", None),
    "interpolation_type": ("linear",),
    "timestep_type": ("discrete",),
}
# Keys edgegen refuses when true (name -> why, for the message).
_REFUSED_IF_TRUE = ("thresholding", "use_beta_sigmas", "use_lu_lambdas", "use_flow_sigmas", "use_dynamic_shifting",
                    "invert_sigmas", "solver_p")


class SchedulerConfig:
    """A stored scheduler config read with the semantics of one diffusers class (``cls``)."""

    def __init__(self, config: dict, cls: str):
        name = config.get("_class_name")
        if name not in SOURCE_CLASSES:
            raise EdgegenError(f"unsupported scheduler class {name!r} (supported: {', '.join(SOURCE_CLASSES)})")
        if (name in FLOW_CLASSES) != (cls in FLOW_CLASSES):
            kind = "a flow-matching" if name in FLOW_CLASSES else "a beta-schedule"
            raise EdgegenError(f"{name} is {kind} config; its samplers are "
                               f"{'flow_euler' if name in FLOW_CLASSES else 'all but flow_euler'}")
        self.config, self.cls, self.source = config, cls, name
        self.defaults = CLASS_DEFAULTS[cls]
        for key in self.defaults:
            self._check(key)

    def __getitem__(self, key: str):
        v = self.config.get(key, self.defaults[key])
        return self.defaults[key] if v is None and key == "disable_corrector" else v

    def _check(self, key: str) -> None:
        v = self[key]
        if key in _CHOICES and v not in _CHOICES[key] and not (key == "beta_schedule" and self["trained_betas"]):
            shown = ", ".join(str(c) for c in _CHOICES[key])
            raise EdgegenError(f"unsupported scheduler option {key}={v!r} for {self.cls} (supported: {shown})")
        if key in _REFUSED_IF_TRUE and v:
            raise EdgegenError(f"unsupported scheduler option {key}={v!r} (edgegen supports {key}=False/None)")

    @property
    def T(self) -> int:
        return int(self["num_train_timesteps"])

    def digest(self) -> str:
        """10 hex digits naming every value this class reads (betas, spacing, sigmas, solver order,
        ...): plans compiled from configs that differ in any of them get different keys
        (plans.plan_key), so a stored plan is never taken for another config's."""
        import hashlib
        import json
        values = {k: self[k] for k in sorted(self.defaults)}
        text = json.dumps([self.cls, values], sort_keys=True, default=float)
        return hashlib.sha256(text.encode()).hexdigest()[:10]


def alpha_bar(cfg: SchedulerConfig) -> np.ndarray:
    """alpha_bar_t, t = 0..T-1, float64, from the config's betas (diffusers' definitions)."""
    T = cfg.T
    if cfg["trained_betas"] is not None:
        betas = np.asarray(cfg["trained_betas"], dtype=np.float64)
        if betas.shape != (T,):
            raise EdgegenError(f"trained_betas has {betas.size} values; num_train_timesteps is {T}")
    elif cfg["beta_schedule"] == "linear":
        betas = np.linspace(cfg["beta_start"], cfg["beta_end"], T, dtype=np.float64)
    elif cfg["beta_schedule"] == "scaled_linear":  # linear in sqrt(beta) (Stable Diffusion)
        betas = np.linspace(cfg["beta_start"] ** 0.5, cfg["beta_end"] ** 0.5, T, dtype=np.float64) ** 2
    else:  # squaredcos_cap_v2: Nichol & Dhariwal 2021, s = 0.008, beta capped at 0.999
        f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
        betas = np.array([min(1 - f((i + 1) / T) / f(i / T), 0.999) for i in range(T)])
    ab = np.cumprod(1.0 - betas)
    if cfg.config.get("rescale_betas_zero_snr", False) and "rescale_betas_zero_snr" in cfg.defaults:
        # Lin et al. 2024: shift and scale sqrt(alpha_bar) so the last step has zero SNR, keeping the first.
        r = np.sqrt(ab)
        r = (r - r[-1]) * r[0] / (r[0] - r[-1])
        ab = r ** 2
        if cfg.cls in ("EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler", "DPMSolverMultistepScheduler",
                       "UniPCMultistepScheduler"):
            ab[-1] = 2.0 ** -24  # these classes keep sigma finite at t = T-1, as diffusers does
    return ab


def k_sigmas(ab: np.ndarray) -> np.ndarray:
    """sigma_t = sqrt((1 - alpha_bar) / alpha_bar), increasing in t."""
    return np.sqrt((1 - ab) / ab)


def spaced(cfg: SchedulerConfig, n: int, plus_one: bool = False, integer: bool = True,
           last: int | None = None) -> np.ndarray:
    """The inference timesteps, descending, per ``timestep_spacing``.

    linspace  n points from T-1 to 0 (``plus_one``: n+1 points, dropping the final 0 — the
              multistep solvers end at sigma = 0 instead of evaluating t = 0)
    leading   0, r, 2r, ... (r = T // n, or T // (n+1) with ``plus_one``) reversed, plus steps_offset
    trailing  T-1, T-1-T/n, ... (rounded): starts at the noisiest step
    Euler-type classes keep linspace values unrounded (``integer`` False), float32 as in diffusers.
    ``last``: the grid ends below this timestep instead of T (DPM-Solver's lambda_min_clipped).
    """
    T, spacing = cfg.T, cfg["timestep_spacing"]
    end = T if last is None else last
    if not 1 <= n <= T:
        raise EdgegenError(f"steps must be between 1 and {T}, got {n}")
    m = n + 1 if plus_one else n
    if spacing == "linspace":
        if integer:
            ts = np.linspace(0, end - 1, m).round()[::-1]
        else:
            ts = np.linspace(0, end - 1, m, dtype=np.float32)[::-1].astype(np.float64)
        ts = ts[:n]
    elif spacing == "leading":
        ts = (np.arange(m) * (end // m))[::-1][:n].astype(np.float64) + cfg["steps_offset"]
    else:
        ts = np.round(np.arange(end, 0, -T / n)) - 1
    return np.ascontiguousarray(ts, dtype=np.float64)


def sigma_to_t(sigma: np.ndarray, log_sigmas: np.ndarray) -> np.ndarray:
    """The (fractional) training timestep of each sigma: linear in log sigma between table entries."""
    return np.interp(np.log(np.maximum(sigma, 1e-10)), log_sigmas, np.arange(len(log_sigmas), dtype=np.float64))


def karras(sigma_min: float, sigma_max: float, n: int, rho: float = 7.0) -> np.ndarray:
    """Karras et al. 2022 eq. 5: sigma_i^(1/rho) evenly spaced from sigma_max to sigma_min."""
    ramp = np.linspace(0, 1, n)
    return (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho


def exponential(sigma_min: float, sigma_max: float, n: int) -> np.ndarray:
    """log sigma evenly spaced from sigma_max to sigma_min."""
    return np.exp(np.linspace(math.log(sigma_max), math.log(sigma_min), n))


def respaced_sigmas(cfg: SchedulerConfig, in_sigmas: np.ndarray, n: int) -> np.ndarray | None:
    """Karras or exponential sigmas between the ends of ``in_sigmas`` (descending), or None if neither."""
    lo = cfg.config.get("sigma_min") if "sigma_min" in cfg.defaults else None
    hi = cfg.config.get("sigma_max") if "sigma_max" in cfg.defaults else None
    lo = float(in_sigmas[-1]) if lo is None else float(lo)
    hi = float(in_sigmas[0]) if hi is None else float(hi)
    if cfg["use_karras_sigmas"] and cfg["use_exponential_sigmas"]:
        raise EdgegenError("use_karras_sigmas and use_exponential_sigmas cannot both be set")
    if cfg["use_karras_sigmas"]:
        return karras(lo, hi, n)
    if cfg["use_exponential_sigmas"]:
        return exponential(lo, hi, n)
    return None
