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
