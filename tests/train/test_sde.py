import numpy as np
import pytest
import torch

from edgegen.config import from_dict, to_dict
from edgegen.errors import EdgegenError
from edgegen.runtimes.samplers import samplers
from edgegen.runtimes.sde_fast_plans import VP_ONLY
from edgegen.runtimes.sde_schedules import SDE
from edgegen.train import sde
from edgegen.train.families import get_preset
from edgegen.train.runs import load_run


@pytest.mark.parametrize("kind", ["vp", "ve"])
def test_schedule_identities(kind):
    """g^2 = d sigma^2/dt - 2 f sigma^2 (the kernel's variance ODE); VP keeps m^2 + sigma^2 = 1."""
    p = SDE(kind, sigma_max=20.0)
    t, h = np.linspace(0.05, 0.95, 7), 1e-6
    dvar = (p.sigma(t + h) ** 2 - p.sigma(t - h) ** 2) / (2 * h)
    np.testing.assert_allclose(p.g2(t), dvar - 2 * p.drift_coef(t) * p.sigma(t) ** 2, rtol=1e-5)
    if kind == "vp":
        np.testing.assert_allclose(p.mean_coef(t) ** 2 + p.sigma(t) ** 2, 1.0)
    tt = torch.tensor(t, dtype=torch.float32)  # the same functions on torch tensors (training)
    np.testing.assert_allclose(p.sigma(tt).numpy(), p.sigma(t), rtol=1e-5)


def test_presets_round_trip_and_checks():
    for name in sde.PRESETS:
        cfg = get_preset("sde", name)
        assert from_dict(sde.SDEConfig, to_dict(cfg)) == cfg
    for field, value, msg in (("objective", "mle", "unknown objective"), ("p_uncond", 1.5, "p_uncond")):
        cfg = get_preset("sde", "tiny")
        setattr(cfg, field, value)
        with pytest.raises(EdgegenError, match=msg):
            sde.check(cfg)
    cfg = get_preset("sde", "tiny")
    cfg.sde.kind = "subvp"
    with pytest.raises(EdgegenError, match="unknown SDE"):
        sde.check(cfg)
    cfg = get_preset("sde", "tiny")
    cfg.sampling.corrector = "batch"
    with pytest.raises(EdgegenError, match="unknown corrector 'batch'"):
        sde.check(cfg)


def test_ssm_loss_is_the_sliced_objective():
    """For a linear eps = A x, sigma^2 [v^T grad(v^T s) + |s|^2/2] = -sigma v^T A v + |A x_t|^2 / 2."""
    torch.manual_seed(0)
    A = torch.randn(2, 2)

    class Linear(torch.nn.Module):
        def forward(self, x, t, y):
            return x @ A.T

    p = SDE("vp")
    x0, y, t = torch.randn(6, 2), torch.zeros(6, dtype=torch.long), torch.rand(6) * 0.9 + 0.05
    torch.manual_seed(1)
    loss = sde.ssm_loss(Linear(), p, x0, y, t)
    torch.manual_seed(1)
    sigma = p.sigma(t)[:, None]
    x_t = p.mean_coef(t)[:, None] * x0 + sigma * torch.randn_like(x0)
    v = torch.randn_like(x0)
    expected = (-sigma[:, 0] * ((v @ A) * v).sum(1) + 0.5 * ((x_t @ A.T) ** 2).sum(1)).mean() / 2
    torch.testing.assert_close(loss, expected)


def test_tiny_vp_export_and_pc_sampling_on_every_backend(tmp_path, tiny_family_run, export_everywhere):
    run = tiny_family_run("sde", tmp_path / "run")
    assert load_run(run).stats["final_loss_ema"] < 0.9  # DSM starts near 1 (predicting no noise)
    verify, samples = export_everywhere(run, tmp_path / "bundle", sampler="pc", steps=5)
    assert verify["results"]["score"]["openvino"]["fp32"]["trajectory"] == "em-50-eps0.001"
    for other in samples[1:]:
        np.testing.assert_allclose(other, samples[0], atol=1e-3)


def test_ve_sigma_max_from_data_and_ssm_on_moons(tmp_path, tiny_family_run):
    run = tiny_family_run("sde", tmp_path / "ve", preset="moons", train__steps=20, mlp__hidden=32, mlp__layers=1,
                     sde__kind="ve", objective="ssm")
    loaded = load_run(run)
    assert 3.0 < loaded.config.sde.sigma_max < 6.0  # the largest distance between standardized moons
    assert np.isfinite(loaded.stats["final_loss_ema"])
    from edgegen.runtimes.api import Pipeline
    from edgegen.train.runs import open_source
    pipe = Pipeline(open_source(run), "torch")
    assert pipe.sampling["schedule"] == {"kind": "ve", "sigma_min": 0.01, "sigma_max": loaded.config.sde.sigma_max}
    for sampler in samplers("sde"):
        if sampler in VP_ONLY:  # refused on VE in one line (runtimes/sde_fast_plans.py)
            with pytest.raises(EdgegenError, match="needs a VP SDE"):
                pipe.sample(4, sampler=sampler, steps=3)
            continue
        assert pipe.sample(4, sampler=sampler, steps=3).shape == (4, 2)
    assert pipe.plan().key == "pc-100-snr0.16-fixed-eps0.001"  # the moons preset's corrector rule
