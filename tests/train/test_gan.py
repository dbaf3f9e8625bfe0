import numpy as np
import pytest
import torch

from edgegen.config import from_dict, to_dict
from edgegen.errors import EdgegenError
from edgegen.train import gan
from edgegen.train.dcgan import DCGANConfig, Discriminator, Generator
from edgegen.train.families import get_preset
from edgegen.train.runs import load_run


def test_networks_and_checks():
    cfg = DCGANConfig(latent_dim=8, channels=8, label_dim=4, image_size=32, in_channels=3, num_classes=5)
    g, d = Generator(cfg).eval(), Discriminator(cfg).eval()
    x = g(torch.randn(2, 8), torch.tensor([0, 4]))
    assert x.shape == (2, 3, 32, 32) and x.abs().max() <= 1.0
    assert d(x, torch.tensor([0, 4])).shape == (2,)
    for name in gan.PRESETS:
        c = get_preset("gan", name)
        assert from_dict(gan.GANConfig, to_dict(c)) == c
    c = get_preset("gan", "tiny")
    c.data.source = "moons"
    with pytest.raises(EdgegenError, match="not 2-D moons"):
        gan.check(c)
    c = get_preset("gan", "tiny")
    c.data.image_size = 12
    with pytest.raises(EdgegenError, match="power of two"):
        gan.check(c)
    c = get_preset("gan", "tiny")
    c.loss.kind = "wasserstein"
    with pytest.raises(EdgegenError, match="loss.kind must be one of hinge, ns"):
        gan.check(c)
    c = get_preset("gan", "tiny")
    c.loss.d_steps = 0
    with pytest.raises(EdgegenError, match="d_steps must be >= 1"):
        gan.check(c)


def test_discriminator_variants_and_minibatch_std():
    from edgegen.train.dcgan import minibatch_std
    h = torch.randn(6, 3, 4, 4)
    out = minibatch_std(h)
    assert out.shape == (6, 4, 4, 4) and torch.equal(out[:, :3], h)
    same = minibatch_std(h[:1].expand(6, 3, 4, 4))  # a batch of identical images has std ~0: what D can see
    assert float(same[:, 3].max()) < 1e-3 < float(out[:, 3].min())
    for sn, mb in ((True, True), (False, False)):
        cfg = DCGANConfig(latent_dim=4, channels=4, label_dim=2, num_classes=3, spectral_norm=sn, minibatch_std=mb)
        d = Discriminator(cfg)
        has_bn = any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
        assert has_bn == (not sn) and d(torch.randn(5, 1, 16, 16), torch.tensor([0, 1, 2, 0, 1])).shape == (5,)


def test_translate_shifts_with_background_and_keeps_gradients():
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(64, 1, 1, 1).requires_grad_(True)
    out = gan.translate(x, 1)
    assert out.shape == x.shape and torch.equal(gan.translate(x, 0), x)
    # every output is the image shifted by (dr, dc) in [-1, 1]^2, filled with -1
    shifted = {(dr, dc): torch.nn.functional.pad(x[0, 0], (1, 1, 1, 1), value=-1.0)[1 + dr:5 + dr, 1 + dc:5 + dc]
               for dr in (-1, 0, 1) for dc in (-1, 0, 1)}
    seen = {k for o in out[:, 0] for k, v in shifted.items() if torch.equal(o, v)}
    assert len(seen) >= 5 and all(any(torch.equal(o, v) for v in shifted.values()) for o in out[:, 0])
    out.sum().backward()
    assert float(x.grad.sum()) > 0


@pytest.mark.parametrize("kind", ["hinge", "ns"])
def test_losses_r1_and_mode_seeking_are_finite_and_differentiable(kind):
    cfg = DCGANConfig(latent_dim=4, channels=4, label_dim=2, num_classes=3)
    g, d = Generator(cfg), Discriminator(cfg)
    lc = gan.LossConfig(kind=kind, r1_gamma=1.0, mode_seeking=1.0, translate=1)
    x, y = torch.rand(8, 1, 16, 16) * 2 - 1, torch.randint(0, 3, (8,))
    with torch.no_grad():
        fake = g(torch.randn(8, 4), y)
    loss_d = gan.d_loss(d, x, y, fake, y, lc)
    loss_g = gan.g_loss(g, d, 8, 3, 4, lc, torch.device("cpu"))
    assert torch.isfinite(loss_d) and torch.isfinite(loss_g)
    loss_g.backward()
    assert all(p.grad is not None for p in g.parameters())


def test_batchnorm_statistics_follow_the_generator():
    cfg = DCGANConfig(latent_dim=4, channels=4, label_dim=2, num_classes=3)
    g = Generator(cfg)
    gan.recompute_batchnorm(g, 4, 3, batches=3, batch=32)
    assert not g.training and float(g.bn0.running_var.mean()) != 1.0
    assert g.bn0.momentum == 0.1


def test_tiny_gan_exports_generator_and_samples_in_one_call(tmp_path, tiny_family_run, export_everywhere):
    run = tiny_family_run("gan", tmp_path / "run")
    stats = load_run(run).stats
    assert np.isfinite(stats["final_loss_d_ema"]) and stats["discriminator_parameters"] > 0
    verify, samples = export_everywhere(run, tmp_path / "bundle", n=5, labels=[0, 1, 2, 3, 4])
    assert set(verify["results"]) == {"generator"}
    assert verify["results"]["generator"]["onnx"]["fp32"]["trajectory"] == "gan-1"
    from edgegen.runtimes.api import open_pipeline
    pipe = open_pipeline(tmp_path / "bundle", "onnxruntime")
    plan = pipe.plan()
    assert plan.shapes == {"z": [16]} and plan.steps[0]["t"] is None
    assert samples[0].shape == (5, 1, 16, 16) and np.abs(samples[0]).max() <= 1.0
    for other in samples[1:]:
        np.testing.assert_allclose(other, samples[0], atol=1e-5)
