import numpy as np
import pytest
import torch

from edgegen.config import from_dict, to_dict
from edgegen.errors import EdgegenError
from edgegen.train import flow
from edgegen.train.families import get_preset
from edgegen.train.runs import load_run


@pytest.fixture(scope="module")
def moons_run(tmp_path_factory, tiny_family_run):
    """A tiny flow on moons: the MLP, a few hundred steps (seconds)."""
    return tiny_family_run("flow", tmp_path_factory.mktemp("flow") / "moons", preset="moons",
                      train__steps=150, mlp__hidden=64, mlp__layers=2)


def test_presets_round_trip_and_checks():
    for name in flow.PRESETS:
        cfg = get_preset("flow", name)
        assert from_dict(flow.FlowConfig, to_dict(cfg)) == cfg
    cfg = get_preset("flow", "tiny")
    cfg.sampling.sampler = "ddim"
    with pytest.raises(EdgegenError, match="unknown sampler"):
        flow.check(cfg)
    cfg = get_preset("flow", "tiny")
    cfg.data.source = "moons"  # --data moons selects the MLP and a (batch, 2) sample
    flow.check(cfg)
    assert flow.roles(cfg)["velocity"].inputs[0].shape == ("batch", 2)
    assert type(flow.build(cfg)["velocity"]).__name__ == "MLP"


def test_cfm_loss_is_lipman_eq_23():
    """psi_t = (1 - (1 - s) t) x0 + t x1 and target u = x1 - (1 - s) x0, from the same draws."""
    seen = {}

    class Probe(torch.nn.Module):
        def forward(self, x, t, y):
            seen["x"], seen["t"] = x, t
            return torch.zeros_like(x)

    x1, y, s = torch.randn(5, 2), torch.zeros(5, dtype=torch.long), 0.01
    torch.manual_seed(3)
    loss = flow.cfm_loss(Probe(), x1, y, s)
    torch.manual_seed(3)
    t, x0 = torch.rand(5), torch.randn(5, 2)
    torch.testing.assert_close(seen["t"], t)
    torch.testing.assert_close(seen["x"], (1 - (1 - s) * t[:, None]) * x0 + t[:, None] * x1)
    torch.testing.assert_close(loss, ((x1 - (1 - s) * x0) ** 2).mean())


def test_rk4_plan_matches_dopri5_on_the_trained_field(moons_run):
    """The RK4-20 plan against torchdiffeq's adaptive dopri5 on the same network and start."""
    torchdiffeq = pytest.importorskip("torchdiffeq")
    from edgegen.runtimes import rng
    from edgegen.runtimes.api import Pipeline
    from edgegen.train.runs import open_source
    pipe = Pipeline(open_source(moons_run), "torch")
    labels = np.array([0, 1] * 8)
    out = pipe.sample(16, seed=2, labels=labels, sampler="rk4", steps=20)
    net = load_run(moons_run).modules["velocity"]
    y = torch.from_numpy(labels)
    x0 = torch.from_numpy(rng.gaussian(2, (16, 2), draw=0)).double()
    def field(t, x):  # the float32 network inside a float64 adaptive solve
        return net(x.float(), t.float().expand(len(x)), y).double()

    with torch.no_grad():
        ref = torchdiffeq.odeint(field, x0, torch.tensor([0.0, 1.0], dtype=torch.float64), method="dopri5",
                                 rtol=1e-6, atol=1e-6)[-1].numpy()
    err = np.abs(out - ref).max()
    err_fine = np.abs(pipe.sample(16, seed=2, labels=labels, sampler="rk4", steps=40) - ref).max()
    err_euler = np.abs(pipe.sample(16, seed=2, labels=labels, sampler="euler", steps=20) - ref).max()
    print(f"max abs error vs dopri5: rk4-20 {err:.2e}, rk4-40 {err_fine:.2e}, euler-20 {err_euler:.2e}")
    assert err < 5e-4 and err_fine < 5e-4 and err_euler > 10 * err


def test_tiny_digits_export_and_sampling_on_every_backend(tmp_path, tiny_family_run, export_everywhere):
    run = tiny_family_run("flow", tmp_path / "run")
    assert load_run(run).stats["final_loss_ema"] < 1.5
    verify, samples = export_everywhere(run, tmp_path / "bundle", sampler="heun", steps=4)
    r = verify["results"]["velocity"]
    assert set(r) == {"onnx", "openvino"} and r["onnx"]["fp32"]["trajectory"] == "rk4-20"
    assert samples[0].shape == (3, 1, 16, 16)
    for other in samples[1:]:
        np.testing.assert_allclose(other, samples[0], atol=1e-4)


def test_cli_trains_the_moons_variant(tmp_path):
    from edgegen.cli import main
    assert main(["train", "flow", "--preset", "tiny", "--data", "moons", "--quiet", "--out", str(tmp_path / "m"),
                 "--train.steps", "3", "--train.threads", "1"]) == 0
    run = load_run(tmp_path / "m")
    assert run.config.data.source == "moons" and run.config.mlp.num_classes == 2
