"""Sampler plans: every continuous sampler compiled once, in float64, to data.

A plan (format ``edgegen.plan/1``) is JSON:

    {"format": "edgegen.plan/1", "sampler": "ddim", "params": {...},
     "registers": ["x", "eps", "x0"],           # float32 tensors shaped like the sample
     "init":  [op, ...],                        # run once before the first step
     "steps": [{"t": 999.0, "src": "x", "dst": "eps", "ops": [op, ...]}, ...],
     "output": "x"}

Each step evaluates the network once on register ``src`` at time ``t`` (the sample's
label as conditioning), stores the result in ``dst``, then runs its ops in order.
Ops (the only ones a runtime implements):

    {"op": "affine", "dst": R, "terms": [[R1, c1], [R2, c2], ...], "noise": s}
        R = c1*R1 + c2*R2 + ... + s*z, z a fresh Gaussian draw (rng.py); "noise" is
        present only when s != 0, and each op with "noise" is one draw (counter + 1).
        Terms are summed left to right in float32; all right-hand sides are read
        before R is written.
    {"op": "clip", "dst": R, "lo": -1.0, "hi": 1.0}
        R = min(max(R, lo), hi)

    {"op": "langevin", "dst": R, "score": S, "scale": c, "snr": r, "alpha": a}
        One Langevin corrector step (Song et al. 2021, Alg. 4/5) with the SNR step size.
        Per sample i (norms over all of the sample's elements, accumulated in float64):
            s = c * S (float32), z = one fresh Gaussian draw (counter + 1, R's shape),
            step_i = 2 a (r ||z_i|| / ||s_i||)^2   (float64, then float32)
            R_i = R_i + step_i s_i + sqrt(2 step_i) z_i
        Norms are per sample (not over the batch as in Song et al.'s code) so a sample
        does not depend on the batch it is run in. The score is ``c * S`` because
        score networks return eps = -sigma(t) s and the plan folds 1/sigma(t) into c.

    {"op": "blend", "dst": R, "a": A, "b": B, "mask": M}
        R = M * A + (1 - M) * B, elementwise in float32 (inpainting: M is 1 where the
        sample is generated, 0 where the known image is kept; with a binary M the kept
        elements equal B exactly).

Classifier-free guidance is the one named non-affine evaluation mode: when the
caller's guidance w != 1, the network is evaluated on the label and the null label
and ``dst = e_u + w * (e_c - e_u)`` (interpreter.py). The draw counter starts at 0.

Optional fields:
    "shapes": {R: [per-sample dims]}  registers not shaped like the sample (a GAN's
        latent z); a noise draw into such a register uses that register's shape, with
        the same Philox counter scheme (rng.py: block, sample, draw, stream 0).
    "inputs": [R, ...]  registers the caller fills before ``init`` (per sample, shaped like
        the sample unless in "shapes"): image-to-image's ``x_init``, inpainting's ``mask``
        (edit_plan below). A runtime refuses a plan whose inputs it was not given.
    "preview": R  the register that holds the sampler's x0 prediction after every step's ops
        (a DDIM/DDPM plan's ``x0``). Runtimes hand it to a preview callback (decoded when the
        bundle has a decoder); they never compute x0 themselves, so a plan without "preview"
        (an SDE or flow plan) has no preview. Plans stored before it existed lack it and sample
        as before.
    a step's "preview_ops": [op, ...]  affine ops without noise (or clips) that write only the
        preview register; a runtime runs them right after the step's network call, and only at
        steps where a preview is due, so a plan that folds x0 into its update (``clip_x0=False``)
        still names it. Runtimes that show no preview ignore them.
    a step with "t": null calls a role that has no time input (role meta has no
        "time_input"), e.g. a GAN generator G(z, y):
        init [affine z <- 1.0 * noise], steps [{"t": null, "src": "z", "dst": "x", "ops": []}], output "x".
The network's inputs are named by the role's meta: ``time_input`` and ``label_input``
(absent when the role has none); the remaining input is the one fed from ``src``.

Compilers register in samplers.py (the typed registry; ``samplers.compile_plan`` is the entry):
ddpm/ddim here (process "ddpm"), em/pc/pf_euler/pf_heun in sde_plans.py (process "sde"),
euler/heun/rk4 in flow_plans.py (process "flow"), gan here (process "gan").
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgegen.errors import EdgegenError
from edgegen.runtimes.samplers import register
from edgegen.runtimes.schedules import alpha_bar

PLAN_FORMAT = "edgegen.plan/1"


@dataclass
class Plan:
    sampler: str
    params: dict
    registers: list[str]
    init: list[dict]
    steps: list[dict]
    output: str
    format: str = PLAN_FORMAT
    shapes: dict | None = None  # register -> per-sample dims, for registers not shaped like the sample
    inputs: list | None = None  # registers the caller fills before init (image-to-image, inpainting)
    preview: str | None = None  # the register holding the x0 prediction after each step's ops

    @property
    def key(self) -> str:
        return plan_key(self.sampler, self.params)

    def to_json(self) -> dict:
        d = {"format": self.format, "sampler": self.sampler, "params": self.params,
             "registers": self.registers, "init": self.init, "steps": self.steps, "output": self.output}
        if self.shapes:
            d["shapes"] = self.shapes
        if self.inputs:
            d["inputs"] = self.inputs
        if self.preview:
            d["preview"] = self.preview
        return d

    @staticmethod
    def from_json(d: dict) -> "Plan":
        if d.get("format") != PLAN_FORMAT:
            raise EdgegenError(f"unsupported plan format {d.get('format')!r} (expected {PLAN_FORMAT})")
        plan = Plan(d["sampler"], d["params"], list(d["registers"]), d["init"], d["steps"], d["output"],
                    shapes=d.get("shapes"), inputs=d.get("inputs"), preview=d.get("preview"))
        validate(plan)
        return plan


def plan_key(sampler: str, params: dict) -> str:
    """A stable name for a plan: sampler, steps and the options that change the math."""
    key = f"{sampler}-{params['steps']}"
    if params.get("eta", 0.0) and sampler == "ddim":
        key += f"-eta{params['eta']:g}"
    if not params.get("clip_x0", True):
        key += "-noclip"
    if "snr" in params:
        key += f"-snr{params['snr']:g}"
    if params.get("corrector", "snr") != "snr":
        key += f"-{params['corrector']}"
    if params.get("spacing", "logsnr") != "logsnr":  # VP-SDE fast samplers (sde_fast_plans.py)
        key += f"-{params['spacing']}"
    if "eps" in params:
        key += f"-eps{params['eps']:g}"
    if "strength" in params:
        key += f"-strength{params['strength']:g}"
    if params.get("inpaint"):
        key += "-inpaint"
    if "scheduler" in params:  # diffusers process: digest of the scheduler options (diffusers_plans.py)
        key += f"-{params['scheduler']}"
    return key


def validate(plan: Plan) -> None:
    """Check that every op names known registers and has the fields it needs."""
    regs = set(plan.registers)

    def check_op(op: dict) -> None:
        kind = op.get("op")
        if op.get("dst") not in regs:
            raise EdgegenError(f"plan op writes unknown register {op.get('dst')!r}")
        if kind == "affine":
            for name, _ in op["terms"]:
                if name not in regs:
                    raise EdgegenError(f"plan op reads unknown register {name!r}")
        elif kind == "langevin":
            if op.get("score") not in regs or not all(k in op for k in ("scale", "snr", "alpha")):
                raise EdgegenError("plan langevin op needs a known score register, scale, snr and alpha")
        elif kind == "blend":
            if not all(op.get(k) in regs for k in ("a", "b", "mask")):
                raise EdgegenError("plan blend op needs known registers a, b and mask")
        elif kind != "clip":
            raise EdgegenError(f"unknown plan op {kind!r}")

    for op in plan.init:
        check_op(op)
    for step in plan.steps:
        if step["src"] not in regs or step["dst"] not in regs:
            raise EdgegenError("plan step evaluates on unknown registers")
        for op in step["ops"]:
            check_op(op)
    if plan.output not in regs:
        raise EdgegenError(f"plan output {plan.output!r} is not a register")
    for name in plan.shapes or {}:
        if name not in regs:
            raise EdgegenError(f"plan shapes name unknown register {name!r}")
    for name in plan.inputs or []:
        if name not in regs:
            raise EdgegenError(f"plan inputs name unknown register {name!r}")
    if plan.preview is not None and plan.preview not in regs:
        raise EdgegenError(f"plan preview names unknown register {plan.preview!r}")
    for step in plan.steps:
        for op in step.get("preview_ops", ()):
            check_op(op)
            if op.get("dst") != plan.preview or op.get("op") not in ("affine", "clip") or "noise" in op:
                raise EdgegenError("plan preview_ops must be affine ops without noise (or clips) writing the preview register")


def affine(dst: str, terms: list[tuple[str, float]], noise: float = 0.0) -> dict:
    """An affine op (float64 coefficients stored as JSON numbers)."""
    op = {"op": "affine", "dst": dst, "terms": [[r, float(c)] for r, c in terms]}
    if noise != 0.0:
        op["noise"] = float(noise)
    return op


_affine = affine


def respaced_timesteps(T: int, steps: int) -> list[int]:
    """``steps`` timesteps from T-1 down to 0, evenly spaced (all T when steps == T)."""
    if not 1 <= steps <= T:
        raise EdgegenError(f"steps must be between 1 and {T}, got {steps}")
    return sorted({int(round(v)) for v in np.linspace(0, T - 1, steps)}, reverse=True)


def compile_ddim(ab: np.ndarray, steps: int, eta: float = 0.0, clip_x0: bool = True) -> Plan:
    """DDIM (Song et al. 2021) over a respaced sequence; eta=1 gives DDPM-like noise.

    x0   = (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t)
    sigma = eta * sqrt((1 - ab_prev) / (1 - ab_t)) * sqrt(1 - ab_t / ab_prev)
    x_prev = sqrt(ab_prev) x0 + sqrt(1 - ab_prev - sigma^2) eps + sigma z
    With clipping, eps is recomputed from the clipped x0 so the update stays consistent.
    """
    if eta < 0:
        raise EdgegenError(f"eta must be >= 0, got {eta}")
    ts = respaced_timesteps(len(ab), steps)
    out = []
    for i, t in enumerate(ts):
        a = ab[t]
        a_prev = ab[ts[i + 1]] if i + 1 < len(ts) else 1.0
        sigma = eta * np.sqrt((1 - a_prev) / (1 - a)) * np.sqrt(1 - a / a_prev)
        c_dir = np.sqrt(max(1 - a_prev - sigma**2, 0.0))
        if clip_x0:
            ops = [_affine("x0", [("x", 1 / np.sqrt(a)), ("eps", -np.sqrt(1 - a) / np.sqrt(a))]),
                   {"op": "clip", "dst": "x0", "lo": -1.0, "hi": 1.0},
                   _affine("eps", [("x", 1 / np.sqrt(1 - a)), ("x0", -np.sqrt(a) / np.sqrt(1 - a))]),
                   _affine("x", [("x0", np.sqrt(a_prev)), ("eps", c_dir)], sigma)]
        else:  # fold x0 into one update: x_prev = c_x x + c_eps eps + sigma z
            c_x = np.sqrt(a_prev) / np.sqrt(a)
            c_eps = c_dir - np.sqrt(a_prev) * np.sqrt(1 - a) / np.sqrt(a)
            ops = [_affine("x", [("x", c_x), ("eps", c_eps)], sigma)]
        out.append(_with_preview({"t": float(t), "src": "x", "dst": "eps", "ops": ops}, a, clip_x0))
    return Plan("ddim", {"steps": len(ts), "eta": float(eta), "clip_x0": bool(clip_x0)},
                ["x", "eps", "x0"], [_affine("x", [], 1.0)], out, "x", preview="x0")


def _with_preview(step: dict, a: float, clipped: bool) -> dict:
    """A DDIM/DDPM step whose ops fold x0 into the update gets ops that compute it for previews only."""
    if not clipped:
        step["preview_ops"] = [_affine("x0", [("x", 1 / np.sqrt(a)), ("eps", -np.sqrt(1 - a) / np.sqrt(a))])]
    return step


def compile_ddpm(ab: np.ndarray, steps: int | None = None, clip_x0: bool = True,
                 variance: str = "posterior") -> Plan:
    """Ancestral DDPM (Ho et al. 2020), on all T steps or a respaced subsequence.

    With alpha_t = ab_t / ab_prev and beta_t = 1 - alpha_t (the original betas when
    not respaced):  mean = c0 x0 + c1 x_t, c0 = beta_t sqrt(ab_prev) / (1 - ab_t),
    c1 = (1 - ab_prev) sqrt(alpha_t) / (1 - ab_t); variance is the posterior
    beta_tilde = beta_t (1 - ab_prev) / (1 - ab_t) or beta_t; no noise at the last step.
    """
    if variance not in ("posterior", "beta"):
        raise EdgegenError(f"unknown DDPM variance '{variance}' (choose posterior, beta)")
    ts = respaced_timesteps(len(ab), steps or len(ab))
    out = []
    for i, t in enumerate(ts):
        a = ab[t]
        a_prev = ab[ts[i + 1]] if i + 1 < len(ts) else 1.0
        alpha = a / a_prev
        beta = 1 - alpha
        c0 = beta * np.sqrt(a_prev) / (1 - a)
        c1 = (1 - a_prev) * np.sqrt(alpha) / (1 - a)
        last = i + 1 == len(ts)
        var = 0.0 if last else (beta * (1 - a_prev) / (1 - a) if variance == "posterior" else beta)
        if clip_x0:
            ops = [_affine("x0", [("x", 1 / np.sqrt(a)), ("eps", -np.sqrt(1 - a) / np.sqrt(a))]),
                   {"op": "clip", "dst": "x0", "lo": -1.0, "hi": 1.0},
                   _affine("x", [("x0", c0), ("x", c1)], np.sqrt(var))]
        else:  # mean = (x - beta / sqrt(1 - ab) eps) / sqrt(alpha)
            ops = [_affine("x", [("x", c0 / np.sqrt(a) + c1), ("eps", -c0 * np.sqrt(1 - a) / np.sqrt(a))],
                           np.sqrt(var))]
        out.append(_with_preview({"t": float(t), "src": "x", "dst": "eps", "ops": ops}, a, clip_x0))
    return Plan("ddpm", {"steps": len(ts), "clip_x0": bool(clip_x0), "variance": variance},
                ["x", "eps", "x0"], [_affine("x", [], 1.0)], out, "x", preview="x0")


def compile_gan(latent_dim: int) -> Plan:
    """One generator call on z drawn from the Philox stream (draw 0)."""
    if latent_dim < 1:
        raise EdgegenError(f"latent_dim must be >= 1, got {latent_dim}")
    return Plan("gan", {"steps": 1}, ["z", "x"], [_affine("z", [], 1.0)],
                [{"t": None, "src": "z", "dst": "x", "ops": []}], "x", shapes={"z": [int(latent_dim)]})


STORED_STRENGTHS = (0.3, 0.6, 0.8)  # the image-to-image strengths a bundle stores by default


def edit_strength(strength, inpaint: bool) -> float | None:
    """The strength an edit runs at: the caller's, checked, else 0.6 for image-to-image and None
    for inpainting (every step from pure noise: the stored '-inpaint' plan)."""
    if strength is None:
        return None if inpaint else 0.6
    if isinstance(strength, bool) or not 0.0 < float(strength) <= 1.0:
        raise EdgegenError(f"strength must be in (0, 1], got {strength}")
    return float(strength)


def edit_plan_specs(base: dict) -> list[dict]:
    """The stored edits of one bundle plan spec (``bundle_plans`` entries): image-to-image at
    STORED_STRENGTHS and inpainting, so runtimes that run only stored plans (native, web) can edit
    images; Python compiles any other strength itself."""
    return [{**base, "strength": s} for s in STORED_STRENGTHS] + [{**base, "inpaint": True}]


def edit_plan(plan: Plan, generator: dict, strength: float | None = None, inpaint: bool = False) -> Plan:
    """Image-to-image and inpainting (latent-stages.md) as an edit of a compiled plan.

    ``strength`` s in (0, 1]: keep the last round(s N) of the plan's N steps (as diffusers does);
    the first kept step runs at t0, so ``init`` becomes x = sqrt(ab_t0) x_init + sqrt(1 - ab_t0) z
    (one draw, draw 0), x_init an input register (the image, or its scaled latents).
    ``inpaint``: after each step's ops, x_known = sqrt(ab_next) x_init + sqrt(1 - ab_next) z (the
    known image at the level the step just reached; noise-free after the last step) and
    x = blend(x, x_known, mask), mask an input register (1 = generate, 0 = keep).
    Needs a plan whose steps evaluate and update its output register at DDPM times t (ab = the
    generator's alpha-bar schedule), i.e. process "ddpm"."""
    if generator.get("process") != "ddpm" or "schedule" not in generator:
        raise EdgegenError(f"image-to-image and inpainting need a DDPM-process model (this one is "
                           f"{generator.get('process')!r})")
    x = plan.output
    if any(st["src"] != x or st["t"] is None for st in plan.steps):
        raise EdgegenError(f"sampler '{plan.sampler}' cannot start from an image (its steps do not update {x!r})")
    ab = _alpha_bar(generator)
    steps, init = list(plan.steps), list(plan.init)
    params = dict(plan.params)
    if strength is not None:
        if isinstance(strength, bool) or not 0.0 < float(strength) <= 1.0:
            raise EdgegenError(f"strength must be in (0, 1], got {strength}")
        keep = min(len(steps), int(round(float(strength) * len(steps))))
        if keep < 1:
            raise EdgegenError(f"strength {strength} keeps none of the {len(steps)} steps: raise it or the steps")
        steps = steps[len(steps) - keep:]
        a0 = ab[int(round(steps[0]["t"]))]
        init = [affine(x, [("x_init", np.sqrt(a0))], np.sqrt(1 - a0))]
        params["strength"] = float(strength)
    if inpaint:
        out = []
        for i, st in enumerate(steps):
            a_next = ab[int(round(steps[i + 1]["t"]))] if i + 1 < len(steps) else 1.0
            known = (affine("x_known", [("x_init", np.sqrt(a_next))], np.sqrt(1 - a_next)) if i + 1 < len(steps)
                     else affine("x_known", [("x_init", 1.0)]))  # the last step keeps the image itself
            out.append(dict(st, ops=[*st["ops"], known, {"op": "blend", "dst": x, "a": x, "b": "x_known",
                                                         "mask": "mask"}]))
        steps = out
        params["inpaint"] = True
    inputs = ["x_init"] + (["mask"] if inpaint else [])
    registers = list(plan.registers) + [r for r in (*inputs, *(["x_known"] if inpaint else [])) if r not in plan.registers]
    edited = Plan(plan.sampler, params, registers, init, steps, x, shapes=plan.shapes, inputs=inputs,
                  preview=plan.preview)
    validate(edited)
    return edited


@dataclass(frozen=True)
class DDIMOptions:
    eta: float = 0.0  # 0: deterministic DDIM; 1: DDPM-like noise
    clip_x0: bool = True  # clip the predicted x0 to the data range


@dataclass(frozen=True)
class DDPMOptions:
    clip_x0: bool = True
    variance: str = "posterior"  # or "beta" (Ho et al. 2020 both)


def _alpha_bar(generator: dict) -> np.ndarray:
    sch = generator["schedule"]
    return alpha_bar(sch["kind"], sch["T"], sch.get("beta_start", 1e-4), sch.get("beta_end", 0.02))


@register("ddpm", "ddim", DDIMOptions, default_steps=50, summary="DDIM (Song et al. 2021), any number of steps")
def _ddim(generator: dict, steps: int | None, opt: DDIMOptions) -> Plan:
    return compile_ddim(_alpha_bar(generator), steps or 50, float(opt.eta), bool(opt.clip_x0))


@register("ddpm", "ddpm", DDPMOptions, summary="ancestral DDPM (Ho et al. 2020), all T steps or respaced")
def _ddpm(generator: dict, steps: int | None, opt: DDPMOptions) -> Plan:
    return compile_ddpm(_alpha_bar(generator), steps, bool(opt.clip_x0), opt.variance)


@register("gan", "gan", default_steps=1, summary="one generator call on z from the Philox stream")
def _gan(generator: dict, steps: int | None, opt) -> Plan:
    if steps not in (None, 1):
        raise EdgegenError(f"a GAN samples in one call: steps must be 1, got {steps}")
    return compile_gan(int(generator["latent_dim"]))
