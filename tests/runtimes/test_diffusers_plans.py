"""diffusers scheduler configs compiled to plans, step by step against diffusers' own loop.

Both sides see the same network outputs (a smooth deterministic function of (x, t), or a tiny
random UNet2DModel built here) and the same noise: diffusers' randn_tensor is replaced by
edgegen's Philox draws in plan order (draw 0 is the initial noise, which diffusers gets as
latents scaled by init_noise_sigma). diffusers runs in float64 where its step allows it
(Euler-type and multistep steps cast the sample to float32 internally); the plan runs in
float32 as every runtime does. Acceptance: every step's sample within 1e-5 relative
(max |plan - diffusers| / max |diffusers|) and the final sample within 1e-4 absolute.
"""
import json
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from edgegen.errors import EdgegenError  # noqa: E402
from edgegen.runtimes import rng, samplers  # noqa: E402
from edgegen.runtimes.diffusers_plans import SAMPLER_CLASS, default_sampler  # noqa: E402
from edgegen.runtimes.interpreter import apply_op, run_plan  # noqa: E402
from edgegen.runtimes.schedules import alpha_bar  # noqa: E402

SHAPE = (2, 2, 4, 4)  # (B, C, H, W)
SEED = 11
STEP_REL, FINAL_ABS = 1e-5, 1e-4


C = 0.5  # std of the toy data


def toy_net_for(config: dict, sampler: str):
    """The ideal denoiser for data x0 ~ N(0, C^2) under this schedule, plus a small smooth
    nonlinearity, in the config's prediction type: samples stay O(C) as with a trained model.
    The schedule comes from diffusers itself (alphas_cumprod of the sampler's class)."""
    cls = getattr(diffusers, SAMPLER_CLASS[sampler])
    if sampler == "flow_euler":
        T, pred, ab = cls.from_config(config).config.num_train_timesteps, "flow", None
    else:
        sched = cls.from_config(config)
        ab, T, pred = sched.alphas_cumprod.double().numpy(), len(sched.alphas_cumprod), sched.config.prediction_type

    def net(x: np.ndarray, t: float) -> np.ndarray:
        t = float(np.float32(t))
        wiggle = 0.05 * np.tanh(x + t / T)  # scaled by the signal level below: no x0 blow-up near pure noise
        if pred == "flow":  # x = (1 - sigma) x0 + sigma z, v = z - x0
            sig = t / T
            den = (1 - sig) ** 2 * C * C + sig * sig
            return (sig * x - (1 - sig) * C * C * x) / den + (1 - sig) * wiggle
        a2 = np.interp(t, np.arange(T), ab)
        a, s = np.sqrt(a2), np.sqrt(1 - a2)
        wiggle = a * wiggle
        den = a2 * C * C + s * s
        x0, eps = a * C * C * x / den + wiggle, s * x / den + wiggle
        return {"epsilon": eps, "sample": x0, "v_prediction": a * eps - s * x0}[pred]
    return net


def saved_config(cls_name: str, **kw) -> dict:
    """The config as save_pretrained writes it (with _class_name)."""
    return json.loads(getattr(diffusers, cls_name)(**kw).to_json_string())


def run_plan_steps(plan, net, shape=SHAPE):
    """The plan, one step at a time with interpreter.apply_op: register x after each step."""
    draws, regs, xs = [0], {}, []

    def noise(register):
        z = rng.gaussian(SEED, shape, draw=draws[0])
        draws[0] += 1
        return z
    for op in plan.init:
        apply_op(op, regs, noise)
    for step in plan.steps:
        regs[step["dst"]] = net(regs[step["src"]], step["t"]).astype(np.float32)
        for op in step["ops"]:
            apply_op(op, regs, noise)
        xs.append(regs["x"].copy())
    return xs, regs[plan.output]


# what each sampler means in diffusers: its class from the config, with these settings
OVERRIDES = {"dpmpp_2m": dict(algorithm_type="dpmsolver++", solver_order=2),
             "dpmpp_2m_sde": dict(algorithm_type="sde-dpmsolver++", solver_order=2)}


def float64_betas(sched) -> np.ndarray:
    """The betas diffusers' config defines, in float64 (diffusers stores them as float32: near
    squaredcos_cap_v2's cap 1 - beta then loses ~1e-5, more than the tolerance). Checked to round
    to diffusers' own float32 betas, so the reference is diffusers' stepping on exact tables."""
    c, T = sched.config, sched.config.num_train_timesteps
    if c.get("trained_betas") is not None:
        b = np.asarray(c["trained_betas"], dtype=np.float64)
    elif c.beta_schedule == "linear":
        b = np.linspace(c.beta_start, c.beta_end, T)
    elif c.beta_schedule == "scaled_linear":
        b = np.linspace(c.beta_start ** 0.5, c.beta_end ** 0.5, T) ** 2
    else:  # squaredcos_cap_v2 (Nichol & Dhariwal 2021)
        f = lambda u: np.cos((u + 0.008) / 1.008 * np.pi / 2) ** 2  # noqa: E731
        b = np.minimum(1 - f(np.arange(1, T + 1) / T) / f(np.arange(T) / T), 0.999)
    if c.get("rescale_betas_zero_snr"):
        r = np.sqrt(np.cumprod(1 - b))
        r = (r - r[-1]) * r[0] / (r[0] - r[-1])
        ab = r ** 2
        b = 1 - ab / np.concatenate([[1.0], ab[:-1]])
    # (zero-SNR rescaling in float32 moves diffusers' last betas by more than float32 rounding)
    np.testing.assert_allclose(b, sched.betas.double().numpy(), rtol=1e-3 if c.get("rescale_betas_zero_snr") else 2e-6,
                               atol=1e-12)
    return b


def upcast_tables(sched) -> None:
    """diffusers' alpha_bar tables recomputed in float64 from float64_betas (same definitions)."""
    if not hasattr(sched, "alphas_cumprod"):
        return
    pinned = float(sched.alphas_cumprod[-1]) == 2.0 ** -24  # zero-SNR rescale: these classes pin it
    ab = torch.from_numpy(np.cumprod(1 - float64_betas(sched)))
    if pinned:
        ab[-1] = 2.0 ** -24
    sched.alphas_cumprod = ab
    if hasattr(sched, "final_alpha_cumprod") and float(sched.final_alpha_cumprod) != 1.0:
        sched.final_alpha_cumprod = ab[0]
    if hasattr(sched, "lambda_t"):
        sched.alpha_t, sched.sigma_t = ab.sqrt(), (1 - ab).sqrt()
        sched.lambda_t = torch.log(sched.alpha_t) - torch.log(sched.sigma_t)


def run_diffusers(config: dict, sampler: str, n: int, net, monkeypatch, shape=SHAPE, dtype=torch.float64,
                  plan_ts=None, **step_kw):
    """diffusers' own loop: from_config, set_timesteps, scale_model_input, step; Philox noise injected."""
    cls = getattr(diffusers, SAMPLER_CLASS[sampler])
    sched = cls.from_config(config, **OVERRIDES.get(sampler, {}))
    upcast_tables(sched)
    sched.set_timesteps(n)
    multistep = sampler in ("dpmpp_2m", "dpmpp_2m_sde", "unipc")
    if plan_ts is not None and multistep and config.get("use_exponential_sigmas"):
        # diffusers truncates sigma_to_t(exp(log(sigma_max))) = 998.99999... to 998 for the first step; edgegen
        # evaluates the exact t = 999 (known, documented difference): check it is only that, then use ours.
        diff = sched.timesteps.numpy() - np.asarray(plan_ts)
        assert set(np.nonzero(diff)[0]) <= {0} and diff[0] in (0, -1)
        sched.timesteps = torch.tensor(plan_ts, dtype=sched.timesteps.dtype)
    draws = [1]

    def philox_randn(shape_, generator=None, device=None, dtype=None, layout=None):
        z = rng.gaussian(SEED, tuple(shape_), draw=draws[0])
        draws[0] += 1
        return torch.from_numpy(z).to(dtype or torch.float32)
    monkeypatch.setattr(sys.modules[cls.__module__], "randn_tensor", philox_randn, raising=False)
    x = torch.from_numpy(rng.gaussian(SEED, shape, draw=0)).to(dtype) * getattr(sched, "init_noise_sigma", 1.0)
    scale = getattr(sched, "scale_model_input", lambda s, t: s)
    xs = []
    for t in sched.timesteps:
        inp = scale(x, t)
        out = torch.from_numpy(np.asarray(net(inp.detach().numpy(), float(t)))).to(dtype)
        x = sched.step(out, t, x, **step_kw).prev_sample.to(dtype)
        xs.append(x.detach().numpy().astype(np.float64))
    return xs


def rel_errors(ours, ref) -> list[float]:
    return [np.abs(a - b).max() / max(np.abs(b).max(), 1e-12) for a, b in zip(ours, ref)]


def assert_matches(ours, final, ref, floor=None):
    """Every step within STEP_REL relative, the final within FINAL_ABS. ``floor``: diffusers' own
    float32 run of the same loop; where its distance from the float64 reference is above STEP_REL
    (eps prediction at near-zero SNR: x0 = (x - s eps) / a cancels in float32 when a ~ 1e-4), the
    plan, which runs in float32 like every runtime, may be 4x that far."""
    assert len(ours) == len(ref), (len(ours), len(ref))
    tol = [STEP_REL] * len(ref) if floor is None else [max(STEP_REL, 4 * e) for e in rel_errors(floor, ref)]
    for i, (rel, t) in enumerate(zip(rel_errors(ours, ref), tol)):
        assert rel < t, f"step {i}: relative error {rel:.2e} (tolerance {t:.1e})"
    err = np.abs(final - ref[-1]).max()
    final_tol = FINAL_ABS if floor is None else max(FINAL_ABS, 4 * np.abs(floor[-1] - ref[-1]).max())
    assert err < final_tol, f"final: max abs error {err:.2e} (max |x| {np.abs(ref[-1]).max():.3g})"
    assert np.isfinite(final).all()


def check(config: dict, sampler: str, n: int, monkeypatch, net=None, shape=SHAPE, dtype=torch.float64,
          options=None, fp32_floor=False, **step_kw):
    gen = {"process": "diffusers", "scheduler": config, "defaults": {}}
    plan = samplers.compile_plan(gen, sampler, n, **(options or {}))
    net = net or toy_net_for(config, sampler)
    ours, final = run_plan_steps(plan, net, shape)
    ts = [s["t"] for s in plan.steps]
    ref = run_diffusers(config, sampler, n, net, monkeypatch, shape, dtype, ts, **step_kw)
    floor = run_diffusers(config, sampler, n, net, monkeypatch, shape, torch.float32, ts, **step_kw) \
        if fp32_floor else None
    assert_matches(ours, final, ref, floor)
    return plan, final


PREDICTIONS = ("epsilon", "v_prediction", "sample")
SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


# --- every scheduler x every prediction type -----------------------------------------------------

@pytest.mark.parametrize("pred", PREDICTIONS)
@pytest.mark.parametrize("sampler,n,kw", [
    ("ddpm", 8, {}),
    ("ddim", 6, {}),
    ("euler", 6, SD),
    ("euler_ancestral", 6, SD),
    ("heun", 5, SD),
    ("dpmpp_2m", 7, SD),
    ("dpmpp_2m_sde", 7, SD),
    ("unipc", 7, SD),
    ("lcm", 4, {}),
])
def test_scheduler_matches_diffusers(sampler, n, kw, pred, monkeypatch):
    if sampler == "euler_ancestral" and pred == "sample":
        pytest.skip("diffusers' EulerAncestralDiscreteScheduler does not implement sample prediction")
    config = saved_config(SAMPLER_CLASS[sampler], prediction_type=pred, **kw)
    check(config, sampler, n, monkeypatch)


def test_ddim_eta_draws_noise_in_order(monkeypatch):
    config = saved_config("DDIMScheduler", clip_sample=False)
    plan, _ = check(config, "ddim", 6, monkeypatch, options={"eta": 0.7}, eta=0.7)
    assert sum("noise" in op for s in plan.steps for op in s["ops"]) == 5  # the last step has std 0


# --- the options that change the math ------------------------------------------------------------

@pytest.mark.parametrize("sampler,n,kw", [
    ("ddpm", 7, dict(timestep_spacing="trailing", clip_sample=False)),
    ("ddpm", 7, dict(timestep_spacing="linspace", variance_type="fixed_large", beta_schedule="squaredcos_cap_v2",
                     clip_sample=False, fp32_floor=True)),
    ("ddpm", 7, dict(timestep_spacing="linspace", beta_schedule="squaredcos_cap_v2", fp32_floor=True)),
    ("ddpm", 7, dict(timestep_spacing="leading", steps_offset=1, clip_sample_range=0.5)),
    ("ddim", 7, dict(timestep_spacing="trailing", set_alpha_to_one=False, **SD)),
    ("ddim", 7, dict(timestep_spacing="linspace", clip_sample=True, clip_sample_range=0.8)),
    ("ddim", 7, dict(timestep_spacing="leading", steps_offset=1, set_alpha_to_one=False, clip_sample=False, **SD)),
    ("ddim", 6, dict(rescale_betas_zero_snr=True, prediction_type="v_prediction", timestep_spacing="trailing",
                     clip_sample=False, **SD)),
    ("euler", 6, dict(use_karras_sigmas=True, **SD)),
    ("euler", 6, dict(use_exponential_sigmas=True, final_sigmas_type="sigma_min", **SD)),
    ("euler", 6, dict(timestep_spacing="leading", steps_offset=1, **SD)),
    ("euler", 6, dict(timestep_spacing="trailing", rescale_betas_zero_snr=True, prediction_type="v_prediction", **SD)),
    ("euler", 6, dict(use_karras_sigmas=True, sigma_min=0.1, sigma_max=10.0, **SD)),
    ("euler_ancestral", 6, dict(timestep_spacing="leading", steps_offset=1, **SD)),
    ("euler_ancestral", 6, dict(timestep_spacing="trailing", beta_schedule="squaredcos_cap_v2", fp32_floor=True)),
    ("heun", 5, dict(use_karras_sigmas=True, **SD)),
    ("heun", 5, dict(timestep_spacing="trailing", clip_sample=True, prediction_type="sample", **SD)),
    ("heun", 4, dict(use_exponential_sigmas=True, timestep_spacing="leading", steps_offset=1, **SD)),
    ("dpmpp_2m", 16, dict(final_sigmas_type="sigma_min", **SD)),
    ("dpmpp_2m", 16, dict(lower_order_final=False, final_sigmas_type="sigma_min", solver_type="heun", **SD)),
    ("dpmpp_2m", 8, dict(use_karras_sigmas=True, **SD)),
    ("dpmpp_2m", 8, dict(use_karras_sigmas=True, final_sigmas_type="sigma_min", **SD)),
    ("dpmpp_2m", 8, dict(use_exponential_sigmas=True, **SD)),
    ("dpmpp_2m", 8, dict(timestep_spacing="leading", steps_offset=1, euler_at_final=True, **SD)),
    ("dpmpp_2m", 8, dict(timestep_spacing="trailing", rescale_betas_zero_snr=True, prediction_type="v_prediction",
                         **SD)),
    ("dpmpp_2m", 8, dict(lambda_min_clipped=-5.1, beta_schedule="squaredcos_cap_v2")),
    ("dpmpp_2m_sde", 8, dict(use_karras_sigmas=True, solver_type="heun", **SD)),
    ("dpmpp_2m_sde", 16, dict(final_sigmas_type="sigma_min", **SD)),
    ("unipc", 8, dict(use_karras_sigmas=True, **SD)),
    ("unipc", 8, dict(use_exponential_sigmas=True, final_sigmas_type="sigma_min", **SD)),
    ("unipc", 8, dict(solver_order=3, **SD)),
    ("unipc", 8, dict(solver_order=1, **SD)),
    ("unipc", 8, dict(solver_type="bh1", final_sigmas_type="sigma_min", timestep_spacing="leading", steps_offset=1,
                      **SD)),
    ("unipc", 8, dict(disable_corrector=[0, 3], timestep_spacing="trailing", **SD)),
    ("unipc", 8, dict(lower_order_final=False, final_sigmas_type="sigma_min", **SD)),
    ("unipc", 8, dict(rescale_betas_zero_snr=True, prediction_type="v_prediction", **SD)),
    ("lcm", 4, dict(clip_sample=True, original_inference_steps=40)),
    ("lcm", 6, dict(set_alpha_to_one=False, prediction_type="v_prediction", timestep_scaling=5.0)),
])
def test_options_match_diffusers(sampler, n, kw, monkeypatch):
    kw = dict(kw)
    floor = kw.pop("fp32_floor", False)
    check(saved_config(SAMPLER_CLASS[sampler], **kw), sampler, n, monkeypatch, fp32_floor=floor)


def test_trained_betas_match_diffusers(monkeypatch):
    betas = np.linspace(1e-4, 0.03, 100) ** 1.2
    config = saved_config("UniPCMultistepScheduler", num_train_timesteps=100, trained_betas=betas.tolist())
    check(config, "unipc", 6, monkeypatch)
    check(config, "euler", 6, monkeypatch)


@pytest.mark.parametrize("kw", [{}, dict(shift=3.0), dict(shift=3.0, shift_terminal=0.1), dict(use_karras_sigmas=True),
                                dict(shift=2.0, stochastic_sampling=True)])
def test_flow_match_euler_matches_diffusers(kw, monkeypatch):
    check(saved_config("FlowMatchEulerDiscreteScheduler", **kw), "flow_euler", 6, monkeypatch)


@pytest.mark.parametrize("source,sampler", [("DDIMScheduler", "euler_ancestral"), ("PNDMScheduler", "dpmpp_2m"),
                                            ("EulerDiscreteScheduler", "ddim"), ("DDPMScheduler", "unipc"),
                                            ("LCMScheduler", "heun"), ("UniPCMultistepScheduler", "dpmpp_2m_sde")])
def test_any_sampler_from_any_stored_class(source, sampler, monkeypatch):
    """A sampler compiled from another class's config is that sampler's class.from_config(config)."""
    check(saved_config(source, prediction_type="v_prediction", **SD), sampler, 6, monkeypatch)


def test_default_sampler_follows_the_stored_class():
    assert default_sampler(saved_config("EulerAncestralDiscreteScheduler")) == "euler_ancestral"
    assert default_sampler(saved_config("DPMSolverMultistepScheduler", algorithm_type="sde-dpmsolver++")) \
        == "dpmpp_2m_sde"
    for cfg in (saved_config("DPMSolverMultistepScheduler", solver_order=3), saved_config("PNDMScheduler")):
        with pytest.raises(EdgegenError):
            default_sampler(cfg)


# --- a tiny random UNet2DModel, float32 on both sides --------------------------------------------

@pytest.fixture(scope="module")
def unet_net():
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(sample_size=8, in_channels=2, out_channels=2, layers_per_block=1,
                                 block_out_channels=(8, 16), norm_num_groups=4,
                                 down_block_types=("DownBlock2D", "DownBlock2D"),
                                 up_block_types=("UpBlock2D", "UpBlock2D")).eval()

    def net(x, t):
        with torch.no_grad():
            return unet(torch.from_numpy(np.asarray(x, dtype=np.float32)), float(np.float32(t))).sample.numpy()
    return net


@pytest.mark.parametrize("sampler,pred", [("ddim", "epsilon"), ("euler_ancestral", "v_prediction"),
                                          ("dpmpp_2m", "epsilon"), ("unipc", "sample")])
def test_tiny_unet_matches_diffusers(unet_net, sampler, pred, monkeypatch):
    config = saved_config(SAMPLER_CLASS[sampler], prediction_type=pred, **SD)
    check(config, sampler, 5, monkeypatch, net=unet_net, shape=(2, 2, 8, 8), dtype=torch.float32)


# --- edgegen's own DDPM: dpmpp_2m and unipc from its schedule ------------------------------------

@pytest.mark.parametrize("sampler", ["dpmpp_2m", "unipc", "euler_ancestral"])
@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_edgegen_ddpm_fast_samplers_match_diffusers(sampler, kind, monkeypatch):
    ab = alpha_bar(kind, 1000)
    betas = 1 - ab / np.concatenate([[1.0], ab[:-1]])
    gen = {"process": "ddpm", "schedule": {"kind": kind, "T": 1000, "beta_start": 1e-4, "beta_end": 0.02},
           "defaults": {"sampler": sampler, "steps": 10}}
    plan = samplers.compile_plan(gen, clip_x0=False)  # diffusers has no static x0 clipping
    assert plan.sampler == sampler and plan.params["steps"] == 10
    assert plan.steps[0]["t"] == 999.0
    assert sampler == "euler_ancestral" or all(float(s["t"]).is_integer() for s in plan.steps)
    cfg = saved_config(SAMPLER_CLASS[sampler], trained_betas=betas.tolist(), timestep_spacing="linspace")
    net = toy_net_for(cfg, sampler)
    ours, final = run_plan_steps(plan, net)
    ref = run_diffusers(cfg, sampler, 10, net, monkeypatch)
    # edgegen's cosine schedule starts at alpha_bar ~ 1e-9: diffusers' float32 run sets the floor there
    floor = run_diffusers(cfg, sampler, 10, net, monkeypatch, dtype=torch.float32) if kind == "cosine" else None
    assert_matches(ours, final, ref, floor)


@pytest.mark.parametrize("sampler", ["dpmpp_2m", "unipc", "euler_ancestral"])
def test_edgegen_ddpm_fast_samplers_clip_x0_by_default(sampler):
    gen = {"process": "ddpm", "schedule": {"kind": "linear", "T": 1000}, "defaults": {"clip_x0": True}}
    plan = samplers.compile_plan(gen, sampler, 6)
    clips = [op for s in plan.steps for op in s["ops"] if op["op"] == "clip"]
    assert len(clips) == 6 and all(op["lo"] == -1.0 and op["hi"] == 1.0 for op in clips)
    assert not any(op["op"] == "clip" for s in samplers.compile_plan(gen, sampler, 6, clip_x0=False).steps
                   for op in s["ops"])
    # an eps network that is wrong by a lot still gives samples in range at the end (x0 = last clipped x0)
    out = run_plan(plan, lambda x, t, y: (0.5 * x + 1.0).astype(np.float32), (1, 4, 4), np.zeros(3, np.int64), 0)
    assert np.abs(out).max() <= 1.0 + 1e-5


def test_interpreter_runs_the_same_plan():
    """run_plan (batched, per-sample noise) gives what the step-by-step runner gives."""
    config = saved_config("EulerAncestralDiscreteScheduler", **SD)
    plan = samplers.compile_plan({"process": "diffusers", "scheduler": config, "defaults": {}}, "euler_ancestral", 5)
    net = toy_net_for(config, "euler_ancestral")
    _, final = run_plan_steps(plan, net)
    out = run_plan(plan, lambda x, t, y: net(x, t[0]).astype(np.float32), SHAPE[1:],
                   np.zeros(SHAPE[0], np.int64), SEED, batch_size=1)
    np.testing.assert_array_equal(out, final)


def test_bundle_defaults_pick_sampler_and_steps():
    gen = {"process": "diffusers", "scheduler": saved_config("DDIMScheduler"),
           "defaults": {"sampler": "ddim", "steps": 7, "eta": 0.5}}
    plan = samplers.compile_plan(gen)
    assert plan.sampler == "ddim" and {k: plan.params[k] for k in ("steps", "eta")} == {"steps": 7, "eta": 0.5}
    assert samplers.compile_plan(gen, "lcm").params["steps"] == 4


# --- plan keys: a stored plan is never taken for another config's ----------------------------------

@pytest.mark.parametrize("sampler,cls,a,b", [
    ("dpmpp_2m", "DPMSolverMultistepScheduler", {"solver_order": 2}, {"solver_order": 3}),
    ("unipc", "UniPCMultistepScheduler", {"solver_order": 2}, {"solver_order": 3}),
    ("dpmpp_2m", "DPMSolverMultistepScheduler", {}, {"use_karras_sigmas": True}),
    ("euler", "EulerDiscreteScheduler", {}, {"use_karras_sigmas": True}),
    ("ddim", "DDIMScheduler", {"timestep_spacing": "leading"}, {"timestep_spacing": "trailing"}),
    ("euler", "EulerDiscreteScheduler", {"timestep_spacing": "linspace"}, {"timestep_spacing": "trailing"}),
    ("ddim", "DDIMScheduler", {}, {"prediction_type": "v_prediction"}),
    ("ddpm", "DDPMScheduler", {}, {"beta_schedule": "scaled_linear"}),
    ("unipc", "UniPCMultistepScheduler", {}, {"final_sigmas_type": "sigma_min"}),
])
def test_plan_keys_tell_scheduler_options_apart(sampler, cls, a, b):
    """Two configs that differ in an option the sampler's class reads get different plan keys, and a
    bundle holding the plan of one of them does not hand it out for the other."""
    from edgegen.runtimes.plans import plan_key
    gens = [{"process": "diffusers", "scheduler": saved_config(cls, **kw), "defaults": {}} for kw in (a, b)]
    pa, pb = (samplers.compile_plan(g, sampler, 8) for g in gens)
    assert pa.key != pb.key and pa.key.startswith(f"{sampler}-8-") and pb.key.startswith(f"{sampler}-8-")
    assert pa.key == samplers.compile_plan(gens[0], sampler, 8).key  # stable
    # what PlanGenerator.plan looks up in a bundle's stored plans
    stored = {pa.key: pa.to_json()}
    assert stored.get(pb.key) is None and stored.get(plan_key(pa.sampler, pa.params)) == pa.to_json()


def test_plan_keys_ignore_what_the_class_does_not_read():
    """Keys the sampler's class does not read (as from_config ignores them) leave the key alone, so
    a DDIM config and the same config saved from PNDMScheduler share their stored ddim plans."""
    cfg = saved_config("DDIMScheduler")
    other = {**cfg, "_class_name": "PNDMScheduler", "skip_prk_steps": True, "use_karras_sigmas": True}
    keys = {samplers.compile_plan({"process": "diffusers", "scheduler": c, "defaults": {}}, "ddim", 8).key
            for c in (cfg, other)}
    assert len(keys) == 1


# --- refusals: one line naming what is unsupported and what is -----------------------------------

@pytest.mark.parametrize("config,sampler,match", [
    (saved_config("DDIMScheduler", thresholding=True), "ddim", "thresholding"),
    (saved_config("DPMSolverMultistepScheduler", thresholding=True), "dpmpp_2m", "thresholding"),
    ({**saved_config("DDPMScheduler"), "beta_schedule": "sigmoid"}, "ddpm", "beta_schedule='sigmoid'.*linear"),
    ({**saved_config("DDIMScheduler"), "_class_name": "KarrasVeScheduler"}, "ddim", "KarrasVeScheduler.*DDIMScheduler"),
    ({**saved_config("DDIMScheduler"), "prediction_type": "flow_prediction"}, "ddim", "prediction_type.*epsilon"),
    ({**saved_config("EulerDiscreteScheduler"), "timestep_spacing": "karras"}, "euler", "timestep_spacing"),
    (saved_config("EulerDiscreteScheduler", use_beta_sigmas=True), "euler", "use_beta_sigmas"),
    (saved_config("EulerDiscreteScheduler", timestep_type="continuous"), "euler", "timestep_type"),
    (saved_config("DPMSolverMultistepScheduler", use_lu_lambdas=True), "dpmpp_2m", "use_lu_lambdas"),
    (saved_config("DDPMScheduler", variance_type="learned_range"), "ddpm", "variance_type"),
    ({**saved_config("UniPCMultistepScheduler"), "final_sigmas_type": "max"}, "unipc", "final_sigmas_type"),
    (saved_config("UniPCMultistepScheduler", predict_x0=False), "unipc", "predict_x0"),
    (saved_config("FlowMatchEulerDiscreteScheduler"), "ddim", "flow-matching"),
    (saved_config("DDIMScheduler"), "flow_euler", "beta-schedule"),
    (saved_config("FlowMatchEulerDiscreteScheduler", use_dynamic_shifting=True), "flow_euler", "use_dynamic_shifting"),
    (saved_config("DDIMScheduler", rescale_betas_zero_snr=True, timestep_spacing="trailing"), "ddim", "v_prediction"),
])
def test_unsupported_options_are_refused_on_one_line(config, sampler, match):
    with pytest.raises(EdgegenError, match=match) as e:
        samplers.compile_plan({"process": "diffusers", "scheduler": config, "defaults": {}}, sampler, 5)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("sampler", list(SAMPLER_CLASS))
def test_plans_are_valid_json(sampler):
    """Every compiled plan survives JSON (no numpy scalars, no inf) and validates as a bundle plan."""
    from edgegen.runtimes.plans import Plan
    config = saved_config(SAMPLER_CLASS[sampler])
    plan = samplers.compile_plan({"process": "diffusers", "scheduler": config, "defaults": {}}, sampler, 6)
    again = Plan.from_json(json.loads(json.dumps(plan.to_json(), allow_nan=False)))
    assert again.to_json() == plan.to_json()
