"""DPM-Solver++(2M) and UniPC plans for VP score-SDE models (runtimes/sde_fast_plans.py) against an
independent float64 references written here (Lu et al. 2022b Algorithm 2; Zhao et al. 2023), on the same model
outputs; against the exact answer for Gaussian data; the VE refusal; and a tiny trained bundle."""
import json
import numpy as np
import pytest
from scipy.optimize import brentq

from edgegen.cli import main
from edgegen.errors import EdgegenError
from edgegen.runtimes import rng
from edgegen.runtimes.interpreter import run_plan
from edgegen.runtimes.pipeline import open_pipeline
from edgegen.runtimes.plans import Plan, validate
from edgegen.runtimes.samplers import compile_plan, samplers

S0 = 0.5  # data ~ N(0, S0^2 I)
B0, B1 = 0.1, 20.0
EPS = 1e-3


# The VP SDE written out here, not taken from sde_schedules.py.
def alpha(t):
    return np.exp(-0.25 * t**2 * (B1 - B0) - 0.5 * t * B0)


def sigma(t):
    return np.sqrt(1.0 - alpha(t) ** 2)


def lam(t):
    return np.log(alpha(t) / sigma(t))


def sampling(kind="vp"):
    schedule = {"kind": "vp", "beta_min": B0, "beta_max": B1} if kind == "vp" else \
        {"kind": "ve", "sigma_min": 0.01, "sigma_max": 10.0}
    return {"process": "sde", "schedule": schedule, "defaults": {"sampler": "pc", "steps": 50, "eps": EPS}}


def exact_eps(x, t):
    """eps = -sigma(t) * score of p_t for N(0, S0^2 I) data."""
    return sigma(t) * x / (alpha(t) ** 2 * S0**2 + sigma(t) ** 2)


def bent_eps(x, t):
    """The exact eps plus a nonlinearity, so that every coefficient of the update matters."""
    return exact_eps(x, t) + 0.2 * sigma(t) * np.tanh(2.0 * x)


def as_net(f):
    return lambda x, t, y: f(x.astype(np.float64), float(t[0])).astype(np.float32)


def reference_grid(steps, spacing):
    if spacing == "time":
        return np.linspace(1.0, EPS, steps + 1)
    lams = np.linspace(lam(1.0), lam(EPS), steps + 1)  # lambda inverted numerically here
    return np.array([1.0] + [brentq(lambda t, v=v: lam(t) - v, EPS / 2, 1.0, xtol=1e-15) for v in lams[1:-1]]
                    + [EPS])


def reference_dpmpp_2m(x, f, ts):
    """DPM-Solver++(2M), Lu et al. 2022b Algorithm 2, in float64: data prediction
    x0 = (x - sigma eps) / alpha; x_i = sigma_i/sigma_{i-1} x - alpha_i (e^{-h_i} - 1) D_i."""
    x = x.astype(np.float64)
    prev, h_prev = None, None
    for i in range(len(ts) - 1):
        t, s = ts[i], ts[i + 1]
        d_cur = (x - sigma(t) * f(x, t)) / alpha(t)
        h = lam(s) - lam(t)
        if prev is None:
            d = d_cur
        else:
            r = h_prev / h
            d = (1 + 1 / (2 * r)) * d_cur - 1 / (2 * r) * prev
        x = sigma(s) / sigma(t) * x - alpha(s) * (np.exp(-h) - 1) * d
        prev, h_prev = d_cur, h
    return x


def reference_unipc(x, f, ts):
    """UniPC bh2 order 2 with data prediction (Zhao et al. 2023; the variant diffusers runs: predictor
    rho = 1/2 at order 2, corrector rhos = R^-1 b of the previous predictor's order), in float64."""
    x = x.astype(np.float64)
    ms, x_last, order_prev = [], None, None

    def update(x_s, s, t, m0, hist, model_t, order, corrector):
        h = lam(t) - lam(s)
        hh = -h
        rks, d1s = [], []
        for k in range(1, order):
            rk = (lam(hist[-k][0]) - lam(s)) / h
            rks.append(rk)
            d1s.append((hist[-k][1] - m0) / rk)
        rks.append(1.0)
        phi1 = np.expm1(hh)
        phik, fact, R, b = phi1 / hh - 1, 1.0, [], []
        for k in range(1, order + 1):
            R.append(np.power(rks, k - 1))
            b.append(phik * fact / phi1)
            fact *= k + 1
            phik = phik / hh - 1 / fact
        xt = sigma(t) / sigma(s) * x_s - alpha(t) * phi1 * m0
        if corrector:
            rhos = np.array([0.5]) if order == 1 else np.linalg.solve(np.array(R), np.array(b))
            res = sum(r * d for r, d in zip(rhos[:-1], d1s)) + rhos[-1] * (model_t - m0)
            return xt - alpha(t) * phi1 * res
        return xt - alpha(t) * phi1 * sum(0.5 * d for d in d1s) if d1s else xt

    for i in range(len(ts) - 1):
        t = ts[i]
        m = (x - sigma(t) * f(x, t)) / alpha(t)
        if i > 0:  # corrector: from x_last at t_{i-1} to t_i with this step's model output
            x = update(x_last, ts[i - 1], t, ms[-1][1], ms[:-1], m, order_prev, True)
        ms.append((t, m))
        order = min(2, i + 1)
        x_last = x
        x = update(x, t, ts[i + 1], m, ms[:-1], None, order, False)
        order_prev = order
    return x


SHAPE, N, SEED = (1, 8, 8), 16, 5


REFERENCES = {"dpmpp_2m": reference_dpmpp_2m, "unipc": reference_unipc}


@pytest.mark.parametrize("sampler", ["dpmpp_2m", "unipc"])
@pytest.mark.parametrize("spacing", ["logsnr", "time"])
@pytest.mark.parametrize("steps", [1, 2, 3, 6, 15])
def test_plan_matches_reference_on_the_same_model(sampler, spacing, steps):
    plan = compile_plan(sampling(), sampler, steps, spacing=spacing)
    validate(plan)
    assert {op["op"] for s in plan.steps for op in s["ops"]} == {"affine"}
    ts = reference_grid(steps, spacing)
    np.testing.assert_allclose([s["t"] for s in plan.steps], ts[:-1], rtol=1e-12, atol=1e-12)
    ours = run_plan(plan, as_net(bent_eps), SHAPE, np.zeros(N, np.int64), seed=SEED)
    ref = REFERENCES[sampler](rng.gaussian(SEED, (N, *SHAPE), draw=0), bent_eps, ts)
    assert np.abs(ours - ref).max() / np.abs(ref).max() < 1e-5


def test_clip_x0_clips_every_data_prediction():
    plan = compile_plan(sampling(), "dpmpp_2m", 6, clip_x0=True)
    assert plan.params["clip_x0"] is True
    assert [[op["op"] for op in s["ops"]] for s in plan.steps] == [["affine", "clip", "affine"]] * 6

    def clipped(x, f, ts):  # the reference with x0 clipped
        return reference_dpmpp_2m(x, lambda x, t: (x - alpha(t) * np.clip((x - sigma(t) * f(x, t)) / alpha(t),
                                                                          -1, 1)) / sigma(t), ts)
    ours = run_plan(plan, as_net(bent_eps), SHAPE, np.zeros(N, np.int64), seed=SEED)
    ref = clipped(rng.gaussian(SEED, (N, *SHAPE), draw=0), bent_eps, reference_grid(6, "logsnr"))
    assert np.abs(ours - ref).max() / np.abs(ref).max() < 1e-5


def exact_flow_errors(sampler, steps, spacing="logsnr"):
    """For N(0, S0^2) data the probability-flow ODE maps x_1 to x_1 * std(eps) / std(1)."""
    x1 = rng.gaussian(SEED, (N, *SHAPE), draw=0).astype(np.float64)
    std = lambda t: np.sqrt(alpha(t) ** 2 * S0**2 + sigma(t) ** 2)  # noqa: E731
    exact = x1 * std(EPS) / std(1.0)
    return {n: np.abs(run_plan(compile_plan(sampling(), sampler, n, spacing=spacing), as_net(exact_eps), SHAPE,
                               np.zeros(N, np.int64), seed=SEED) - exact).max() for n in steps}


def test_dpmpp_2m_converges_to_the_exact_flow_of_gaussian_data_at_second_order():
    errs = exact_flow_errors("dpmpp_2m", (20, 40, 80))
    assert errs[80] < 2e-3  # of max |x| ~ 1.6
    assert errs[40] < errs[20] / 3.3 and errs[80] < errs[40] / 3.3  # ~4x per halving of h (3.7, 3.9 measured)
    # uniform-t steps converge too, more slowly (their last step spans most of lambda's range)
    assert errs[80] < exact_flow_errors("dpmpp_2m", (80,), "time")[80] < 0.1  # 0.033 measured


def test_unipc_converges_to_the_exact_flow_of_gaussian_data_at_third_order():
    """UniP-2 with the UniC corrector raises the order by one (Zhao et al. 2023)."""
    errs = exact_flow_errors("unipc", (20, 40, 80))
    assert errs[80] < 5e-4  # 2.2e-4 measured (DPM-Solver++(2M): 1.4e-3)
    assert errs[40] < errs[20] / 5 and errs[80] < errs[40] / 5  # ~8x per halving (7.3, 7.9 measured)


def test_defaults_json_round_trip_and_registry():
    assert {"dpmpp_2m", "unipc"} <= set(samplers("sde"))
    plan = compile_plan(sampling(), "dpmpp_2m")
    assert plan.params == {"steps": 20, "eps": EPS, "spacing": "logsnr", "clip_x0": False}
    assert compile_plan({**sampling(), "defaults": {"eps": 1e-2}}, "dpmpp_2m", 4).steps[-1]["t"] > 1e-2
    again = Plan.from_json(json.loads(json.dumps(plan.to_json())))
    assert again.to_json() == plan.to_json()


def test_refusals_are_one_line():
    with pytest.raises(EdgegenError, match="needs a VP SDE.*VE"):
        compile_plan(sampling("ve"), "dpmpp_2m", 10)
    with pytest.raises(EdgegenError, match="'unipc' needs a VP SDE"):
        compile_plan(sampling("ve"), "unipc", 10)
    with pytest.raises(EdgegenError, match="unknown spacing 'karras'"):
        compile_plan(sampling(), "dpmpp_2m", 10, spacing="karras")
    with pytest.raises(EdgegenError, match="does not apply"):
        compile_plan(sampling(), "dpmpp_2m", 10, snr=0.1)


def test_tiny_sde_bundle_samples_with_dpmpp_2m(family_bundle, tmp_path):
    """`edgegen sample BUNDLE --sampler dpmpp_2m --steps 12` on a trained tiny VP bundle (onnxruntime)."""
    bundle = family_bundle("sde")
    out = tmp_path / "grid.png"
    assert main(["sample", str(bundle), "--sampler", "dpmpp_2m", "--steps", "12", "--n", "4", "--out", str(out),
                 "--quiet"]) == 0
    assert out.stat().st_size > 0
    # the same plan runs through the Pipeline on onnxruntime and stays finite
    pipe = open_pipeline(bundle)
    for sampler in ("dpmpp_2m", "unipc"):
        x = pipe.sample(4, seed=0, sampler=sampler, steps=12)
        assert x.shape[0] == 4 and np.isfinite(x).all()


def test_plan_keys_name_spacing_and_clipping():
    # two of these plans stored in one bundle must never share a name
    from edgegen.runtimes.plans import plan_key
    from edgegen.runtimes.sde_fast_plans import compile_dpmpp_2m, compile_unipc
    from edgegen.runtimes.sde_schedules import SDE
    keys = set()
    for fn in (compile_dpmpp_2m, compile_unipc):
        for spacing in ("logsnr", "time"):
            for clip in (False, True):
                p = fn(SDE("vp"), 10, 1e-3, spacing, clip)
                keys.add(plan_key(p.sampler, p.params))
    assert len(keys) == 8, keys
