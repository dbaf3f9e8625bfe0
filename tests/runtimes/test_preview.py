"""Previews in the Python interpreter: the plan's x0 register (plans.py "preview", a step's
"preview_ops" for plans that fold x0 into their update), checked against x0 computed here in float64
from the network's own inputs and outputs, on an analytic network."""
import numpy as np
import pytest

from edgegen.errors import Cancelled, EdgegenError
from edgegen.runtimes.interpreter import run_plan
from edgegen.runtimes.plans import Plan
from edgegen.runtimes.samplers import compile_plan
from edgegen.runtimes.schedules import alpha_bar

SAMPLING = {"process": "ddpm", "schedule": {"kind": "linear", "T": 100}, "defaults": {"clip_x0": True}}
SHAPE = (1, 3, 3)


def net(x, t, y):
    return (0.3 * x + 0.002 * t[:, None, None, None] + 0.01 * y[:, None, None, None]).astype(np.float32)


@pytest.mark.parametrize("sampler,clip", [("ddim", True), ("ddim", False), ("ddpm", True), ("ddpm", False)])
def test_preview_is_the_x0_prediction_and_changes_nothing(sampler, clip):
    plan = compile_plan(SAMPLING, sampler, 10, clip_x0=clip)
    assert plan.preview == "x0" and Plan.from_json(plan.to_json()).to_json() == plan.to_json()
    assert all(("preview_ops" in st) != clip for st in plan.steps)  # only plans that fold x0 need them
    ab = alpha_bar("linear", 100)
    labels = np.array([0, 1, 2])
    inputs, shown = [], []
    out = run_plan(plan, net, SHAPE, labels, seed=3, batch_size=2,
                   on_eval=lambda i, x, t, y: inputs.append((x.copy(), t.copy(), y.copy())),
                   on_preview=lambda d, total, x0: shown.append((d, total, x0.copy())), preview_every=3)
    ref = run_plan(plan, net, SHAPE, labels, seed=3, batch_size=2)
    np.testing.assert_array_equal(out, ref)
    assert [(d, total) for d, total, _ in shown] == [(d, 20) for d in (3, 6, 9, 12, 15, 18)]
    for d, _, x0 in shown:  # x0 = (x_t - sqrt(1 - ab) eps) / sqrt(ab), from the call of step d
        x, t, y = inputs[d - 1]
        a = ab[int(t[0])]
        want = (x.astype(np.float64) - np.sqrt(1 - a) * net(x, t, y)) / np.sqrt(a)
        np.testing.assert_allclose(x0, np.clip(want, -1, 1) if clip else want, atol=2e-5 * max(1, np.abs(want).max()))


def test_last_preview_of_ddim_is_the_sample():
    plan = compile_plan(SAMPLING, "ddim", 10, clip_x0=False)
    shown = []
    out = run_plan(plan, net, SHAPE, np.array([0, 1]), seed=1, on_preview=lambda d, t, x0: shown.append(x0.copy()))
    assert len(shown) == 10
    np.testing.assert_array_equal(shown[-1], out)


def test_false_cancels_and_plans_without_x0_are_refused():
    plan = compile_plan(SAMPLING, "ddim", 10)
    with pytest.raises(Cancelled, match="cancelled by the preview callback after 2 of 10 steps"):
        run_plan(plan, net, SHAPE, np.array([0]), seed=0, on_preview=lambda d, t, x0: d < 2)
    sde = {"process": "sde", "schedule": {"kind": "vp", "beta_min": 0.1, "beta_max": 20.0}}
    em = compile_plan(sde, "em", 5)
    assert em.preview is None
    with pytest.raises(EdgegenError, match="names no x0 prediction register: it has no preview"):
        run_plan(em, net, SHAPE, np.array([0]), seed=0, on_preview=lambda *a: None)


def test_bad_preview_ops_are_refused():
    d = compile_plan(SAMPLING, "ddim", 3, clip_x0=False).to_json()
    d["steps"][0]["preview_ops"] = [{"op": "affine", "dst": "x", "terms": [["x", 1.0]]}]
    with pytest.raises(EdgegenError, match="preview_ops must be affine ops without noise"):
        Plan.from_json(d)
