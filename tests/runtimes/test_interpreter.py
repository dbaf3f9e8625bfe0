import numpy as np
import pytest

from edgegen.runtimes.interpreter import guided_eval, run_plan
from edgegen.runtimes.samplers import compile_plan

SAMPLING = {"process": "ddpm", "schedule": {"kind": "linear", "T": 100}, "defaults": {"clip_x0": True}}


def fake_net(x, t, y):
    """Depends on every input so batching mistakes show up."""
    return (0.1 * x + 0.001 * t[:, None, None, None] + 0.01 * y[:, None, None, None]).astype(np.float32)


def test_guidance_mixes_conditional_and_null():
    x = np.ones((2, 1, 2, 2), np.float32)
    t = np.zeros(2, np.float32)
    y = np.array([3, 5])
    out = guided_eval(fake_net, x, t, y, guidance=3.0, null_label=10)
    e_c, e_u = fake_net(x, t, y), fake_net(x, t, np.full(2, 10))
    np.testing.assert_allclose(out, e_u + 3.0 * (e_c - e_u), rtol=1e-6)
    np.testing.assert_array_equal(guided_eval(fake_net, x, t, y, 1.0, 10), e_c)


@pytest.mark.parametrize("sampler,eta", [("ddim", 0.5), ("ddpm", 0.0)])
def test_results_do_not_depend_on_batch_size(sampler, eta):
    plan = compile_plan(SAMPLING, sampler, 10, **({"eta": eta} if sampler == "ddim" else {}))
    labels = np.arange(7) % 3
    a = run_plan(plan, fake_net, (1, 3, 3), labels, seed=5, batch_size=7, guidance=2.0, null_label=9)
    b = run_plan(plan, fake_net, (1, 3, 3), labels, seed=5, batch_size=3, guidance=2.0, null_label=9)
    np.testing.assert_allclose(a, b, atol=1e-6)
    c = run_plan(plan, fake_net, (1, 3, 3), labels, seed=6, batch_size=7, guidance=2.0, null_label=9)
    assert not np.allclose(a, c)


def test_hook_sees_every_network_input():
    plan = compile_plan(SAMPLING, "ddim", 8, eta=0.0)
    seen = []
    run_plan(plan, fake_net, (1, 2, 2), np.array([1, 2, 3]), seed=0, batch_size=2,
             on_eval=lambda i, x, t, y: seen.append((i, x.shape[0], float(t[0]))))
    assert len(seen) == 16  # 8 steps x 2 batches
    assert [s[2] for s in seen[:8]] == [s["t"] for s in plan.steps]
