"""Plan compiler against closed-form values, and the interpreter on analytic networks."""
import json

import numpy as np
import pytest

from edgegen.errors import EdgegenError
from edgegen.runtimes.interpreter import run_plan
from edgegen.runtimes.plans import Plan, compile_ddim, compile_ddpm, respaced_timesteps
from edgegen.runtimes.samplers import compile_plan
from edgegen.runtimes.schedules import alpha_bar, betas

SAMPLING = {"process": "ddpm", "schedule": {"kind": "linear", "T": 1000, "beta_start": 1e-4, "beta_end": 0.02},
            "defaults": {"clip_x0": True}}


def test_linear_schedule_closed_form():
    b = betas("linear", 1000)
    assert b[0] == pytest.approx(1e-4) and b[-1] == pytest.approx(0.02)
    ab = alpha_bar("linear", 1000)
    assert ab[9] == pytest.approx(np.prod([1 - (1e-4 + i * (0.02 - 1e-4) / 999) for i in range(10)]), rel=1e-12)
    assert np.all(np.diff(ab) < 0) and ab[-1] < 1e-4


def test_cosine_schedule_matches_definition():
    ab = alpha_bar("cosine", 1000)
    f = lambda u: np.cos((u + 0.008) / 1.008 * np.pi / 2) ** 2  # noqa: E731
    assert ab[499] == pytest.approx(f(0.5) / f(0.0), rel=1e-6)


def test_unknown_schedule():
    with pytest.raises(ValueError, match="unknown beta schedule"):
        betas("quadratic", 10)


def test_respacing():
    assert respaced_timesteps(1000, 50)[0] == 999 and respaced_timesteps(1000, 50)[-1] == 0
    assert len(respaced_timesteps(1000, 50)) == 50
    assert respaced_timesteps(10, 10) == list(range(9, -1, -1))
    with pytest.raises(EdgegenError):
        respaced_timesteps(10, 11)


def test_ddim_eta0_is_deterministic_and_has_no_noise():
    plan = compile_ddim(alpha_bar("linear", 1000), 50, eta=0.0, clip_x0=False)
    noisy = [op for s in plan.steps for op in s["ops"] if "noise" in op]
    assert noisy == [] and len(plan.steps) == 50
    # The single affine of a step: x_prev = sqrt(ab_prev)/sqrt(ab) x + (sqrt(1-ab_prev) - sqrt(ab_prev) sqrt(1-ab)/sqrt(ab)) eps
    ab = alpha_bar("linear", 1000)
    t, t_prev = 999, respaced_timesteps(1000, 50)[1]
    (cx_name, cx), (ce_name, ce) = plan.steps[0]["ops"][0]["terms"]
    assert (cx_name, ce_name) == ("x", "eps")
    assert cx == pytest.approx(np.sqrt(ab[t_prev] / ab[t]), rel=1e-12)
    assert ce == pytest.approx(np.sqrt(1 - ab[t_prev]) - np.sqrt(ab[t_prev]) * np.sqrt(1 - ab[t]) / np.sqrt(ab[t]), rel=1e-12)


def test_ddim_eta_sigma():
    ab = alpha_bar("linear", 1000)
    plan = compile_ddim(ab, 10, eta=1.0, clip_x0=False)
    ts = respaced_timesteps(1000, 10)
    a, ap = ab[ts[3]], ab[ts[4]]
    expected = np.sqrt((1 - ap) / (1 - a)) * np.sqrt(1 - a / ap)
    assert plan.steps[3]["ops"][-1]["noise"] == pytest.approx(expected, rel=1e-12)
    assert "noise" not in plan.steps[-1]["ops"][-1]  # a_prev = 1 at the end


def test_ddpm_posterior_variance_and_mean():
    b = betas("linear", 1000)
    ab = np.cumprod(1 - b)
    plan = compile_ddpm(ab, clip_x0=False)
    assert len(plan.steps) == 1000
    t = 500
    step = plan.steps[999 - t]
    assert step["t"] == t
    op = step["ops"][0]
    var = b[t] * (1 - ab[t - 1]) / (1 - ab[t])
    assert op["noise"] ** 2 == pytest.approx(var, rel=1e-10)
    # mean = (x - beta/sqrt(1-ab) eps) / sqrt(alpha)
    terms = dict((k, v) for k, v in op["terms"])
    assert terms["x"] == pytest.approx(1 / np.sqrt(1 - b[t]), rel=1e-10)
    assert terms["eps"] == pytest.approx(-b[t] / np.sqrt(1 - ab[t]) / np.sqrt(1 - b[t]), rel=1e-10)
    assert "noise" not in plan.steps[-1]["ops"][0]


def test_plan_json_round_trip_and_validation():
    plan = compile_plan(SAMPLING, "ddim", 20)
    again = Plan.from_json(json.loads(json.dumps(plan.to_json())))
    assert again.to_json() == plan.to_json() and again.key == "ddim-20"
    bad = json.loads(json.dumps(plan.to_json()))
    bad["steps"][0]["ops"][0]["terms"][0][0] = "nope"
    with pytest.raises(EdgegenError, match="unknown register"):
        Plan.from_json(bad)
    bad = json.loads(json.dumps(plan.to_json()))
    bad["steps"][0]["ops"].append({"op": "sqrt", "dst": "x"})
    with pytest.raises(EdgegenError, match="unknown plan op"):
        Plan.from_json(bad)
    with pytest.raises(EdgegenError, match="unsupported plan format"):
        Plan.from_json({**plan.to_json(), "format": "other/9"})


def test_compile_errors():
    with pytest.raises(EdgegenError, match="unknown sampler"):
        compile_plan(SAMPLING, "euler", 10)
    with pytest.raises(EdgegenError, match="steps must be"):
        compile_plan(SAMPLING, "ddim", 0)


def _oracle_point(x0_star):
    """Exact eps for data that is a single point x0*: eps = (x_t - sqrt(ab) x0*) / sqrt(1 - ab)."""
    ab = alpha_bar("linear", 1000)

    def net(x, t, y):
        a = ab[int(t[0])]
        return ((x - np.sqrt(a) * x0_star) / np.sqrt(1 - a)).astype(np.float32)
    return net


@pytest.mark.parametrize("sampler,steps,eta", [("ddim", 50, 0.0), ("ddim", 20, 1.0), ("ddpm", None, 0.0)])
def test_samplers_recover_a_point_mass(sampler, steps, eta):
    x0_star = np.linspace(-0.9, 0.9, 16, dtype=np.float32).reshape(1, 4, 4)
    plan = compile_plan(SAMPLING, sampler, steps, **({"eta": eta} if sampler == "ddim" else {}))
    out = run_plan(plan, _oracle_point(x0_star), (1, 4, 4), np.zeros(3, np.int64), seed=0)
    np.testing.assert_allclose(out, np.broadcast_to(x0_star, out.shape), atol=2e-4)


def test_ddim_ode_maps_noise_to_gaussian_data():
    """Data N(0, s^2): exact eps = x sqrt(1-ab) / (ab s^2 + 1 - ab); DDIM (eta 0) ends at std s."""
    s = 0.5
    ab = alpha_bar("linear", 1000)

    def net(x, t, y):
        a = ab[int(t[0])]
        return (x * np.sqrt(1 - a) / (a * s * s + 1 - a)).astype(np.float32)
    plan = compile_plan(SAMPLING, "ddim", 100, eta=0.0, clip_x0=False)
    out = run_plan(plan, net, (1, 32, 32), np.zeros(8, np.int64), seed=1)
    assert out.std() == pytest.approx(s, rel=0.03)
