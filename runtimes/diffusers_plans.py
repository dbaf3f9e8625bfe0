"""diffusers schedulers compiled to plans (format: plans.py), step-exact against diffusers.

Process ``"diffusers"``: the generator section is
    {"process": "diffusers", "scheduler": {<config as save_pretrained writes it, "_class_name">},
     "defaults": {"sampler": ..., "steps": N}}
Each sampler below compiles what diffusers does with ``<its class>.from_config(config)`` and
``set_timesteps(N)`` (diffusers_schedules.py reads the config), whatever class the config was
saved from. Process ``"ddpm"`` (edgegen's own DDPM bundles) gets dpmpp_2m, unipc and
euler_ancestral from the same code, through the equivalent config: its betas as trained_betas,
eps prediction, linspace timesteps in [0, T-1] (integers for the multistep solvers; Euler's are
fractional, as in diffusers).

Spaces. VP samplers (ddpm, ddim, dpmpp_*, unipc, lcm) keep x_t = a x0 + s eps in register x
(a = sqrt(alpha_bar), s = sqrt(1 - alpha_bar)) and feed it to the network as is. Euler-type
samplers (euler, euler_ancestral, heun) keep x = x_t / a = x0 + sigma eps (sigma = s / a) and
feed the network xin = x / sqrt(sigma^2 + 1), an affine op before each evaluation; the initial
noise is scaled by diffusers' init_noise_sigma. Flow matching keeps x = (1 - sigma) x0 + sigma z
and the network returns the velocity. Every sampler turns the network output ``out`` into x0
(epsilon, v_prediction or sample) as an affine combination of x and out; when x0 is clipped
(clip_sample) it gets its own register, otherwise it is folded into the update.

Noise: each op with noise is one Philox draw, in the order diffusers calls randn_tensor (draw 0
is the initial noise); a step where diffusers draws noise it multiplies by zero is always a last
step, so leaving that draw out keeps the order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgegen.errors import EdgegenError
from edgegen.runtimes import diffusers_schedules as ds
from edgegen.runtimes.plans import Plan, affine
from edgegen.runtimes.samplers import NoOptions, register
from edgegen.runtimes.schedules import alpha_bar as edgegen_alpha_bar

Terms = list  # [(register, coefficient)], float64

# The diffusers class each sampler is equivalent to, and the sampler a stored class defaults to.
SAMPLER_CLASS = {"ddpm": "DDPMScheduler", "ddim": "DDIMScheduler", "euler": "EulerDiscreteScheduler",
                 "euler_ancestral": "EulerAncestralDiscreteScheduler", "heun": "HeunDiscreteScheduler",
                 "dpmpp_2m": "DPMSolverMultistepScheduler", "dpmpp_2m_sde": "DPMSolverMultistepScheduler",
                 "unipc": "UniPCMultistepScheduler", "lcm": "LCMScheduler",
                 "flow_euler": "FlowMatchEulerDiscreteScheduler"}


def default_sampler(config: dict) -> str:
    """The sampler that reproduces the stored scheduler itself (one line if there is none)."""
    name = config.get("_class_name")
    if name == "DPMSolverMultistepScheduler":
        algo, order = config.get("algorithm_type", "dpmsolver++"), config.get("solver_order", 2)
        if algo not in ("dpmsolver++", "sde-dpmsolver++") or order != 2:
            raise EdgegenError(f"unsupported DPMSolverMultistepScheduler algorithm_type={algo!r} solver_order={order}"
                               f" (supported: dpmsolver++ or sde-dpmsolver++, solver_order 2)")
        return "dpmpp_2m" if algo == "dpmsolver++" else "dpmpp_2m_sde"
    for sampler, cls in SAMPLER_CLASS.items():
        if cls == name:
            return sampler
    raise EdgegenError(f"scheduler class {name!r} has no edgegen sampler (supported: "
                       f"{', '.join(sorted(set(SAMPLER_CLASS.values())))})")


# --- the generator section -> a config read as one class ---------------------------------------

def _config(generator: dict, cls: str) -> ds.SchedulerConfig:
    if generator.get("process") == "ddpm":  # edgegen's own DDPM: the equivalent diffusers config
        sch = generator["schedule"]
        ab = edgegen_alpha_bar(sch["kind"], sch["T"], sch.get("beta_start", 1e-4), sch.get("beta_end", 0.02))
        betas = 1 - ab / np.concatenate([[1.0], ab[:-1]])
        config = {"_class_name": "DDPMScheduler", "num_train_timesteps": int(sch["T"]),
                  "trained_betas": betas.tolist(), "prediction_type": "epsilon", "timestep_spacing": "linspace"}
    else:
        config = generator.get("scheduler")
        if not isinstance(config, dict):
            raise EdgegenError("the diffusers generator section has no 'scheduler' config")
    return ds.SchedulerConfig(config, cls)


# --- x0 from the network output ------------------------------------------------------------------

def _x0_vp(pred: str, a: float, s: float) -> Terms:
    """x0 from x_t = a x0 + s eps: epsilon (x - s eps) / a, v (v = a eps - s x0): a x - s v, sample."""
    if pred == "epsilon":
        return [("x", 1 / a), ("out", -s / a)]
    if pred == "v_prediction":
        return [("x", a), ("out", -s)]
    return [("out", 1.0)]


def _x0_k(pred: str, sigma: float) -> Terms:
    """x0 from x = x0 + sigma eps (the model saw x / sqrt(sigma^2 + 1), i.e. x_t)."""
    if pred == "epsilon":
        return [("x", 1.0), ("out", -sigma)]
    if pred == "v_prediction":  # x_t = x / c, c = sqrt(sigma^2 + 1): x0 = a x_t - s v with a = 1/c, s = sigma/c
        c2 = sigma * sigma + 1
        return [("x", 1 / c2), ("out", -sigma / np.sqrt(c2))]
    return [("out", 1.0)]


def _sub(terms: Terms, name: str, value: Terms) -> Terms:
    """Substitute register ``name`` by the affine combination ``value`` (coefficients merged)."""
    out: dict[str, float] = {}
    for r, c in terms:
        for r2, c2 in (value if r == name else [(r, 1.0)]):
            out[r2] = out.get(r2, 0.0) + c * c2
    return [(r, c) for r, c in out.items() if c != 0.0]


def _merge(terms: Terms) -> Terms:
    """Terms on the same register added up (in float64), zero coefficients dropped."""
    return _sub(terms, "", [])


def _x0_ops(x0: Terms, clip: float | None, dst: str = "x0") -> tuple[list[dict], Terms]:
    """Ops that make x0 available, and the terms to use for it in later ops."""
    if clip is None:
        return [], x0
    return [affine(dst, x0), {"op": "clip", "dst": dst, "lo": -float(clip), "hi": float(clip)}], [(dst, 1.0)]


def _x0_step(t: float, ops: list[dict], x0_raw: Terms, clip: float | None) -> dict:
    """A step; without clipping its ops fold x0 into the update, so previews get ops of their own."""
    step = _step(t, "x", ops)
    if clip is None:
        step["preview_ops"] = [affine("x0", x0_raw)]
    return step


def _clip_op(register: str, clip: float | None) -> list[dict]:
    return [] if clip is None else [{"op": "clip", "dst": register, "lo": -float(clip), "hi": float(clip)}]


def _clip(cfg: ds.SchedulerConfig) -> float | None:
    return float(cfg["clip_sample_range"]) if cfg["clip_sample"] else None


def _step(t: float, src: str, ops: list[dict]) -> dict:
    return {"t": float(t), "src": src, "dst": "out", "ops": ops}


def _index(cfg: ds.SchedulerConfig, t: float) -> int:
    if not 0 <= t < cfg.T:
        raise EdgegenError(f"timestep {t:g} is outside the schedule [0, {cfg.T - 1}] (check steps_offset)")
    return int(t)


# --- DDPM, DDIM, LCM (VP space) ------------------------------------------------------------------

def compile_ddpm(cfg: ds.SchedulerConfig, n: int) -> Plan:
    """Ancestral DDPM (Ho et al. 2020) on diffusers' timesteps: posterior mean of x_prev given
    x0 and x_t, plus posterior (fixed_small) or beta (fixed_large) noise wherever t > 0."""
    ab, pred, clip = ds.alpha_bar(cfg), cfg["prediction_type"], _clip(cfg)
    ts = ds.spaced(cfg, n)
    steps = []
    for i, t in enumerate(ts):
        a = ab[_index(cfg, t)]
        a_prev = ab[_index(cfg, ts[i + 1])] if i + 1 < len(ts) else 1.0
        beta = 1 - a / a_prev
        var = beta if cfg["variance_type"] == "fixed_large" else max((1 - a_prev) / (1 - a) * beta, 1e-20)
        x0_raw = _x0_vp(pred, np.sqrt(a), np.sqrt(1 - a))
        ops, x0 = _x0_ops(x0_raw, clip)
        mean = [("x0", np.sqrt(a_prev) * beta / (1 - a)), ("x", np.sqrt(1 - beta) * (1 - a_prev) / (1 - a))]
        ops.append(affine("x", _sub(mean, "x0", x0), np.sqrt(var) if t > 0 else 0.0))
        steps.append(_x0_step(t, ops, x0_raw, clip))
    return Plan("ddpm", {"steps": len(ts)}, ["x", "out", "x0"], [affine("x", [], 1.0)], steps, "x",
                preview="x0")


def compile_ddim(cfg: ds.SchedulerConfig, n: int, eta: float = 0.0) -> Plan:
    """DDIM (Song et al. 2021) as diffusers steps it: the previous timestep is t - T // n whatever
    the spacing, x_prev = sqrt(ab_prev) x0 + sqrt(1 - ab_prev - std^2) eps + std z with
    std = eta sqrt((1 - ab_prev)/(1 - ab) (1 - ab/ab_prev)); eps is from the unclipped x0."""
    if eta < 0:
        raise EdgegenError(f"eta must be >= 0, got {eta}")
    ab, pred, clip = ds.alpha_bar(cfg), cfg["prediction_type"], _clip(cfg)
    final = 1.0 if cfg["set_alpha_to_one"] else ab[0]
    ts = ds.spaced(cfg, n)
    steps = []
    for t in ts:
        a = ab[_index(cfg, t)]
        prev = int(t) - cfg.T // n
        a_prev = ab[prev] if prev >= 0 else final
        std = eta * np.sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev))
        x0_raw = _x0_vp(pred, np.sqrt(a), np.sqrt(1 - a))
        eps = _sub([("x", 1 / np.sqrt(1 - a)), ("x0", -np.sqrt(a) / np.sqrt(1 - a))], "x0", x0_raw)
        ops, x0 = _x0_ops(x0_raw, clip)
        c_dir = np.sqrt(max(1 - a_prev - std ** 2, 0.0))
        update = _sub([("x0", np.sqrt(a_prev))], "x0", x0) + [(r, c_dir * c) for r, c in eps]
        ops.append(affine("x", _merge(update), std))
        steps.append(_x0_step(t, ops, x0_raw, clip))
    return Plan("ddim", {"steps": len(ts), "eta": float(eta)}, ["x", "out", "x0"], [affine("x", [], 1.0)], steps, "x",
                preview="x0")


def lcm_timesteps(cfg: ds.SchedulerConfig, n: int) -> np.ndarray:
    """LCM (Luo et al. 2023): n of the distillation's original_inference_steps timesteps, evenly by index."""
    orig = int(cfg["original_inference_steps"])
    if not 1 <= n <= orig or orig > cfg.T:
        raise EdgegenError(f"LCM steps must be between 1 and original_inference_steps={orig}, got {n}")
    origin = (np.arange(1, orig + 1) * (cfg.T // orig) - 1)[::-1]
    return origin[np.floor(np.linspace(0, len(origin), n, endpoint=False)).astype(np.int64)].astype(np.float64)


def compile_lcm(cfg: ds.SchedulerConfig, n: int) -> Plan:
    """LCM multistep sampling: the consistency function c_skip x + c_out x0 (sigma_data 0.5, time
    scaled by timestep_scaling), then re-noised to the next timestep with fresh noise."""
    ab, pred, clip = ds.alpha_bar(cfg), cfg["prediction_type"], _clip(cfg)
    ts = lcm_timesteps(cfg, n)
    steps = []
    for i, t in enumerate(ts):
        a = ab[_index(cfg, t)]
        u = t * float(cfg["timestep_scaling"])
        c_skip, c_out = 0.25 / (u * u + 0.25), u / np.sqrt(u * u + 0.25)
        x0_raw = _x0_vp(pred, np.sqrt(a), np.sqrt(1 - a))
        ops, x0 = _x0_ops(x0_raw, clip)
        denoised = _sub([("x0", c_out), ("x", c_skip)], "x0", x0)
        if i + 1 < len(ts):
            a_prev = ab[_index(cfg, ts[i + 1])]
            ops.append(affine("x", [(r, np.sqrt(a_prev) * c) for r, c in denoised], np.sqrt(1 - a_prev)))
        else:
            ops.append(affine("x", denoised))
        steps.append(_x0_step(t, ops, x0_raw, clip))
    return Plan("lcm", {"steps": len(ts)}, ["x", "out", "x0"], [affine("x", [], 1.0)], steps, "x",
                preview="x0")


# --- Euler, Euler ancestral, Heun (sigma space) --------------------------------------------------

def euler_sigmas(cfg: ds.SchedulerConfig, n: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(timesteps (n,), sigmas (n+1,) ending at the final sigma, init_noise_sigma) of the Euler-type classes."""
    ab = ds.alpha_bar(cfg)
    table = ds.k_sigmas(ab)
    ts = ds.spaced(cfg, n, integer=False)
    if ts.max() > cfg.T - 1 or ts.min() < 0:
        raise EdgegenError(f"timesteps reach outside [0, {cfg.T - 1}] (check steps_offset)")
    sig = np.interp(ts, np.arange(cfg.T), table)  # fractional timesteps: sigma interpolated linearly
    if "use_karras_sigmas" in cfg.defaults:
        resp = ds.respaced_sigmas(cfg, sig, len(ts))
        if resp is not None:
            sig, ts = resp, ds.sigma_to_t(resp, np.log(table))
    final = table[0] if cfg.defaults.get("final_sigmas_type") and cfg["final_sigmas_type"] == "sigma_min" else 0.0
    sigmas = np.concatenate([sig, [final]])
    top = sigmas.max()
    init = top if cfg["timestep_spacing"] in ("linspace", "trailing") else np.sqrt(top * top + 1)
    return ts, sigmas, float(init)


def _scale_in(sigma: float) -> dict:
    return affine("xin", [("x", 1 / np.sqrt(sigma * sigma + 1))])


def compile_euler(cfg: ds.SchedulerConfig, n: int, ancestral: bool = False, clip: float | None = None) -> Plan:
    """Euler on dx/dsigma = (x - x0) / sigma (Karras et al. 2022): x += (sigma' - sigma) (x - x0) / sigma.
    Ancestral: step to sigma_down and add sigma_up noise, sigma_up^2 = sigma'^2 (sigma^2 - sigma'^2) / sigma^2,
    sigma_down^2 = sigma'^2 - sigma_up^2. ``clip``: clip x0 to [-clip, clip] (edgegen's DDPM option; diffusers has none)."""
    pred = cfg["prediction_type"]
    ts, sig, init = euler_sigmas(cfg, n)
    steps = []
    for i, t in enumerate(ts):
        s, s_next = sig[i], sig[i + 1]
        up = np.sqrt(s_next ** 2 * (s ** 2 - s_next ** 2) / s ** 2) if ancestral else 0.0
        down = np.sqrt(s_next ** 2 - up ** 2) if ancestral else s_next
        r = down / s
        ops, x0 = _x0_ops(_x0_k(pred, s), clip)
        ops.append(affine("x", _sub([("x", r), ("x0", 1 - r)], "x0", x0), up))
        if i + 1 < len(ts):
            ops.append(_scale_in(s_next))
        steps.append(_step(t, "xin", ops))
    name = "euler_ancestral" if ancestral else "euler"
    return Plan(name, {"steps": len(ts)}, ["x", "xin", "out", "x0"], [affine("x", [], init), _scale_in(sig[0])],
                steps, "x")


def compile_heun(cfg: ds.SchedulerConfig, n: int) -> Plan:
    """Heun (Karras et al. 2022, Alg. 1 without churn): an Euler step to sigma', one more evaluation
    there, and the average slope from the saved x; the step to sigma = 0 stays Euler. 2n - 1 evaluations."""
    pred, clip = cfg["prediction_type"], _clip(cfg)
    ts, sig, init = euler_sigmas(cfg, n)
    steps = []
    for i, t in enumerate(ts):
        s, s_next = sig[i], sig[i + 1]
        dt = s_next - s
        ops, x0 = _x0_ops(_x0_k(pred, s), clip)
        ops.append(affine("d", _sub([("x", 1 / s), ("x0", -1 / s)], "x0", x0)))  # d = (x - x0) / sigma
        if i + 1 < len(ts):
            ops.append(affine("xs", [("x", 1.0)]))
        ops.append(affine("x", [("x", 1.0), ("d", dt)]))
        if i + 1 == len(ts):
            steps.append(_step(t, "xin", ops))
            break
        ops.append(_scale_in(s_next))
        steps.append(_step(t, "xin", ops))
        ops2, x0b = _x0_ops(_x0_k(pred, s_next), clip)  # second evaluation at (x_euler, sigma')
        d2 = _sub([("x", 1 / s_next), ("x0", -1 / s_next)], "x0", x0b)
        ops2.append(affine("x", [("xs", 1.0), ("d", dt / 2)] + [(r, dt / 2 * c) for r, c in d2]))
        ops2.append(_scale_in(s_next))
        steps.append(_step(ts[i + 1], "xin", ops2))
    return Plan("heun", {"steps": len(ts)}, ["x", "xin", "out", "x0", "d", "xs"],
                [affine("x", [], init), _scale_in(sig[0])], steps, "x")


# --- DPM-Solver++ 2M and UniPC (multistep, VP space, history in registers) -----------------------

def multistep_sigmas(cfg: ds.SchedulerConfig, n: int, last: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(integer timesteps, sigmas ending at the final sigma) of DPMSolverMultistep / UniPCMultistep."""
    ab = ds.alpha_bar(cfg)
    table = ds.k_sigmas(ab)
    ts = ds.spaced(cfg, n, plus_one=True, last=last)
    resp = ds.respaced_sigmas(cfg, table[::-1], n)
    if resp is not None:
        tf = ds.sigma_to_t(resp, np.log(table))
        round_ = cfg["use_karras_sigmas"] and (cfg.cls == "UniPCMultistepScheduler"
                                               or cfg["beta_schedule"] != "squaredcos_cap_v2")
        ts, sig = np.trunc(tf.round() if round_ else tf), resp  # diffusers casts to int64
    else:
        sig = table[np.array([_index(cfg, t) for t in ts])]
    if cfg["final_sigmas_type"] == "zero":
        final = 0.0
    elif resp is not None and cfg.cls == "UniPCMultistepScheduler":
        final = sig[-1]
    else:
        final = table[0]
    return ts, np.concatenate([sig, [final]])


def _vp(k: float) -> tuple[float, float]:
    """(a, s) of x_t from the k-diffusion sigma: a = 1 / sqrt(k^2 + 1), s = k a."""
    a = 1 / np.sqrt(k * k + 1)
    return a, k * a


def compile_dpmpp_2m(cfg: ds.SchedulerConfig, n: int, sde: bool = False, clip: float | None = None) -> Plan:
    """DPM-Solver++(2M) (Lu et al. 2022, Alg. 2) and its SDE variant, in lambda = log(a / s).

    With h = lambda' - lambda (so e^{-h} = k' / k) and data predictions m (x0):
      first order   x' = (s'/s) x - a' (e^{-h} - 1) m
      2M midpoint   x' = (s'/s) x - a' (e^{-h} - 1) (m + D1 / 2),   D1 = (m - m_prev) / r, r = h_prev / h
      2M heun       x' = (s'/s) x - a' (e^{-h} - 1) m + a' ((e^{-h} - 1)/h + 1) D1
      SDE           x' = (s'/s) e^{-h} x + a' (1 - e^{-2h}) (m + c D1) + s' sqrt(1 - e^{-2h}) z
    The first step is first order; so is the last when diffusers lowers it (lower_order_final with
    fewer than 15 steps, euler_at_final, or a final sigma of zero). m alternates registers m0/m1.
    ``clip``: clip each x0 prediction to [-clip, clip] (edgegen's DDPM option: static thresholding, which
    DPM-Solver++ admits since it steps on x0; diffusers' scheduler has only dynamic thresholding).
    """
    pred = cfg["prediction_type"]
    solver = {"bh1": "midpoint", "bh2": "midpoint", "logrho": "midpoint"}.get(cfg["solver_type"], cfg["solver_type"])
    if solver not in ("midpoint", "heun"):
        raise EdgegenError(f"unsupported solver_type={cfg['solver_type']!r} (supported: midpoint, heun)")
    ab = ds.alpha_bar(cfg)
    lam = np.log(np.sqrt(ab)) - np.log(np.sqrt(1 - ab))
    clip_lambda = float(cfg["lambda_min_clipped"])
    last = cfg.T - int(np.searchsorted(lam[::-1], clip_lambda)) if clip_lambda > -np.inf else None
    ts, k = multistep_sigmas(cfg, n, last)
    N = len(ts)
    lower_final = cfg["euler_at_final"] or (cfg["lower_order_final"] and N < 15) or cfg["final_sigmas_type"] == "zero"
    steps = []
    for i, t in enumerate(ts):
        m, m_prev = f"m{i % 2}", f"m{(i + 1) % 2}"
        a_s, s_s = _vp(k[i])
        a_t, s_t = _vp(k[i + 1])
        ops = [affine(m, _x0_vp(pred, a_s, s_s))] + _clip_op(m, clip)
        e = k[i + 1] / k[i]  # e^{-h}
        if sde:
            terms, c_m, noise = [("x", s_t / s_s * e)], a_t * (1 - e * e), s_t * np.sqrt(1 - e * e)
        else:
            terms, c_m, noise = [("x", s_t / s_s)], -a_t * (e - 1), 0.0
        if i == 0 or (i == N - 1 and lower_final):
            terms.append((m, c_m))
        else:
            h = np.log(k[i] / k[i + 1])
            r = np.log(k[i - 1] / k[i]) / h
            if solver == "midpoint":
                c_d = 0.5 * c_m
            elif sde:
                c_d = a_t * ((1 - e * e) / (-2 * h) + 1)
            else:
                c_d = a_t * ((e - 1) / h + 1)
            terms += [(m, c_m + c_d / r), (m_prev, -c_d / r)]  # D1 = (m - m_prev) / r
        ops.append(affine("x", _merge(terms), noise))
        steps.append(_step(t, "x", ops))
    return Plan("dpmpp_2m_sde" if sde else "dpmpp_2m", {"steps": N}, ["x", "out", "m0", "m1"],
                [affine("x", [], 1.0)], steps, "x")


def _unipc_coeffs(hh: float, rks: list[float], order: int, bh: str, predictor: bool) -> tuple[float, float, np.ndarray]:
    """UniPC (Zhao et al. 2023) B(h) variants: (phi_1 = e^hh - 1, B(h), rhos).

    b_k = k! phi_{k+1}(hh) / B(h) with phi_{k+1}(hh) = phi_k(hh)/hh - 1/k! (hh = -h for data
    prediction); rhos solve sum_k rho_k r_k^(j-1) = b_j (order 2 predictor: rho = 1/2 as in the
    paper's UniPC-2; order-1 corrector: 1/2)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        phi1 = np.expm1(hh)
        B = hh if bh == "bh1" else phi1
        g, fact, b = phi1 / hh - 1, 1, []
        for i in range(1, order + 1):
            b.append(g * fact / B)
            fact *= i + 1
            g = g / hh - 1 / fact
    R = np.array([[r ** j for r in rks + [1.0]] for j in range(order)])
    if predictor:
        rhos = np.array([0.5]) if order == 2 else (np.linalg.solve(R[:-1, :-1], b[:-1]) if order > 2 else np.zeros(0))
    else:
        rhos = np.array([0.5]) if order == 1 else np.linalg.solve(R, np.array(b))
    return phi1, B, rhos


def compile_unipc(cfg: ds.SchedulerConfig, n: int, clip: float | None = None) -> Plan:
    """UniPC multistep (Zhao et al. 2023) with data prediction: at each evaluation, the corrector
    UniC refines the previous step's result with the new x0 (the network has already seen the
    uncorrected sample, as in the paper and diffusers), then the predictor UniP takes the step.

    With m_i the x0 prediction at sigma_i and lambda = -log sigma_k:
      x_{i+1} = (s_{i+1}/s_i) x_i - a_{i+1} phi1 m_i - a_{i+1} B(h) sum_k rho_k (m_{i-k} - m_i) / r_k,
      r_k = (lambda_{i-k} - lambda_i) / h; the corrector is the same with the new m_{i+1} added as
      the point r = 1. History: solver_order + 1 registers used as a ring. ``clip`` as in DPM-Solver++.
    """
    if not cfg["predict_x0"]:
        raise EdgegenError("unsupported UniPC predict_x0=False (supported: predict_x0=True)")
    bh = {"midpoint": "bh2", "heun": "bh2", "logrho": "bh2"}.get(cfg["solver_type"], cfg["solver_type"])
    if bh not in ("bh1", "bh2"):
        raise EdgegenError(f"unsupported UniPC solver_type={cfg['solver_type']!r} (supported: bh1, bh2)")
    order = int(cfg["solver_order"])
    if not 1 <= order <= 3:
        raise EdgegenError(f"unsupported UniPC solver_order={order} (supported: 1, 2, 3)")
    pred, skip = cfg["prediction_type"], set(cfg["disable_corrector"])
    ts, k = multistep_sigmas(cfg, n)
    N = len(ts)
    if not cfg["lower_order_final"] and cfg["final_sigmas_type"] == "zero" and order > 1:
        raise EdgegenError("unsupported UniPC lower_order_final=False with final_sigmas_type='zero' "
                           "(diffusers divides by zero there; supported: lower_order_final=True or sigma_min)")
    with np.errstate(divide="ignore"):
        lam = -np.log(k)
    ring = [f"m{j}" for j in range(order + 1)]
    reg = lambda i: ring[i % len(ring)]  # noqa: E731
    steps, prev_order = [], 0
    for i, t in enumerate(ts):
        a_i, s_i = _vp(k[i])
        ops = [affine(reg(i), _x0_vp(pred, a_i, s_i))] + _clip_op(reg(i), clip)
        if i > 0 and (i - 1) not in skip:  # UniC: x_i from x_{i-1}, m_{i-1}, older m and the new m_i
            h = lam[i] - lam[i - 1]
            rks = [(lam[i - 1 - j] - lam[i - 1]) / h for j in range(1, prev_order)]
            phi1, B, rhos = _unipc_coeffs(-h, rks, prev_order, bh, predictor=False)
            a_t = _vp(k[i])[0]
            terms = [("xlast", _vp(k[i])[1] / _vp(k[i - 1])[1]), (reg(i - 1), -a_t * phi1)]
            for j, rk in enumerate(rks, start=1):
                terms += [(reg(i - 1 - j), -a_t * B * rhos[j - 1] / rk), (reg(i - 1), a_t * B * rhos[j - 1] / rk)]
            terms += [(reg(i), -a_t * B * rhos[-1]), (reg(i - 1), a_t * B * rhos[-1])]
            ops.append(affine("x", _merge(terms)))
        this_order = min(order, N - i) if cfg["lower_order_final"] else order
        this_order = min(this_order, i + 1)
        ops.append(affine("xlast", [("x", 1.0)]))
        a_t, s_t = _vp(k[i + 1])
        with np.errstate(divide="ignore", invalid="ignore"):
            h = lam[i + 1] - lam[i]
            rks = [(lam[i - j] - lam[i]) / h for j in range(1, this_order)]
        phi1, B, rhos = _unipc_coeffs(-h, rks, this_order, bh, predictor=True)
        terms = [("x", s_t / s_i), (reg(i), -a_t * phi1)]
        for j, rk in enumerate(rks, start=1):
            terms += [(reg(i - j), -a_t * B * rhos[j - 1] / rk), (reg(i), a_t * B * rhos[j - 1] / rk)]
        ops.append(affine("x", _merge(terms)))
        steps.append(_step(t, "x", ops))
        prev_order = this_order
    return Plan("unipc", {"steps": N}, ["x", "out", "xlast", *ring], [affine("x", [], 1.0)], steps, "x")


# --- flow matching --------------------------------------------------------------------------------

def flow_sigmas(cfg: ds.SchedulerConfig, n: int) -> np.ndarray:
    """FlowMatchEulerDiscrete's sigmas (n+1, ending at 0): timesteps evenly from the shifted
    sigma_max * T to sigma_min * T, shifted again (as diffusers does), optionally stretched so the
    last reaches shift_terminal, optionally Karras / exponential between the ends."""
    T, shift = cfg.T, float(cfg["shift"])
    warp = lambda u: shift * u / (1 + (shift - 1) * u)  # noqa: E731  (Esser et al. 2024, timestep shift)
    hi, lo = warp(1.0), warp(1.0 / T)
    sig = warp(np.linspace(hi * T, lo * T, n) / T)
    if cfg["shift_terminal"]:
        one_minus = 1 - sig
        sig = 1 - one_minus / (one_minus[-1] / (1 - float(cfg["shift_terminal"])))
    resp = ds.respaced_sigmas(cfg, sig, n)
    return np.concatenate([sig if resp is None else resp, [0.0]])


def compile_flow_euler(cfg: ds.SchedulerConfig, n: int) -> Plan:
    """Euler on the flow ODE dx/dsigma = v from sigma = 1 (noise) to 0: x += (sigma' - sigma) v. With
    stochastic_sampling: x' = (1 - sigma') x0 + sigma' z, x0 = x - sigma v. The network sees t = sigma T."""
    sig = flow_sigmas(cfg, n)
    stochastic = bool(cfg["stochastic_sampling"])
    steps = []
    for i in range(n):
        s, s_next = sig[i], sig[i + 1]
        if stochastic:
            op = affine("x", [("x", 1 - s_next), ("out", -(1 - s_next) * s)], s_next)
        else:
            op = affine("x", [("x", 1.0), ("out", s_next - s)])
        steps.append(_step(s * cfg.T, "x", [op]))
    return Plan("flow_euler", {"steps": n}, ["x", "out"], [affine("x", [], 1.0)], steps, "x")


# --- registrations --------------------------------------------------------------------------------

@dataclass(frozen=True)
class DiffusersDDIMOptions:
    eta: float = 0.0  # 0: deterministic DDIM; 1: DDPM-like noise


def _steps(steps: int | None, default: int) -> int:
    return default if steps is None else int(steps)


def _finite(plan: Plan, cfg: ds.SchedulerConfig) -> Plan:
    """Refuse a plan with an infinite or NaN coefficient (e.g. eps prediction at zero terminal SNR,
    where x0 = (x - eps) / 0): diffusers would produce NaN samples there."""
    for op in plan.init + [op for s in plan.steps for op in s["ops"]]:
        values = [c for _, c in op.get("terms", [])] + [op.get("noise", 0.0)]
        if not np.all(np.isfinite(values)):
            raise EdgegenError(f"{plan.sampler} on this config divides by zero (prediction_type="
                               f"{cfg.config.get('prediction_type', 'epsilon')!r}; rescale_betas_zero_snr needs v_prediction)")
    return plan


def _reg(name: str, fn, options=NoOptions, default_steps: int = 50, summary: str = ""):
    cls = SAMPLER_CLASS[name]

    @register("diffusers", name, options, default_steps=default_steps, summary=summary)
    def _compile(generator: dict, steps: int | None, opt) -> Plan:
        cfg = _config(generator, cls)
        plan = _finite(fn(cfg, _steps(steps, default_steps), opt), cfg)
        plan.params["scheduler"] = cfg.digest()  # the config's options in the plan's key (plans.plan_key)
        return plan
    return _compile


_reg("ddpm", lambda c, n, o: compile_ddpm(c, n), default_steps=1000, summary="DDPMScheduler")
_reg("ddim", lambda c, n, o: compile_ddim(c, n, float(o.eta)), DiffusersDDIMOptions, summary="DDIMScheduler (eta)")
_reg("euler", lambda c, n, o: compile_euler(c, n), summary="EulerDiscreteScheduler")
_reg("euler_ancestral", lambda c, n, o: compile_euler(c, n, ancestral=True), summary="EulerAncestralDiscreteScheduler")
_reg("heun", lambda c, n, o: compile_heun(c, n), summary="HeunDiscreteScheduler (2 evaluations per step)")
_reg("dpmpp_2m", lambda c, n, o: compile_dpmpp_2m(c, n), summary="DPMSolverMultistepScheduler, dpmsolver++ order 2")
_reg("dpmpp_2m_sde", lambda c, n, o: compile_dpmpp_2m(c, n, sde=True),
     summary="DPMSolverMultistepScheduler, sde-dpmsolver++ order 2")
_reg("unipc", lambda c, n, o: compile_unipc(c, n), summary="UniPCMultistepScheduler (bh2 by default)")
_reg("lcm", lambda c, n, o: compile_lcm(c, n), default_steps=4, summary="LCMScheduler")
_reg("flow_euler", lambda c, n, o: compile_flow_euler(c, n), summary="FlowMatchEulerDiscreteScheduler")


@dataclass(frozen=True)
class FastDDPMOptions:
    clip_x0: bool = True  # clip every x0 prediction to the data range [-1, 1], as edgegen's DDIM does


def _clip_x0(opt) -> float | None:
    return 1.0 if opt.clip_x0 else None


@register("ddpm", "dpmpp_2m", FastDDPMOptions, default_steps=20,
          summary="DPM-Solver++(2M) (Lu et al. 2022), fast: 10-20 steps")
def _ddpm_dpmpp_2m(generator: dict, steps: int | None, opt: FastDDPMOptions) -> Plan:
    return compile_dpmpp_2m(_config(generator, "DPMSolverMultistepScheduler"), _steps(steps, 20), clip=_clip_x0(opt))


@register("ddpm", "unipc", FastDDPMOptions, default_steps=20, summary="UniPC bh2 (Zhao et al. 2023), fast: 5-20 steps")
def _ddpm_unipc(generator: dict, steps: int | None, opt: FastDDPMOptions) -> Plan:
    return compile_unipc(_config(generator, "UniPCMultistepScheduler"), _steps(steps, 20), clip=_clip_x0(opt))


@register("ddpm", "euler_ancestral", FastDDPMOptions, default_steps=20,
          summary="Euler ancestral in sigma space (Karras et al. 2022 / k-diffusion), fractional t")
def _ddpm_euler_ancestral(generator: dict, steps: int | None, opt: FastDDPMOptions) -> Plan:
    return compile_euler(_config(generator, "EulerAncestralDiscreteScheduler"), _steps(steps, 20), ancestral=True,
                         clip=_clip_x0(opt))
