import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from edgegen.config import from_dict, to_dict
from edgegen.errors import EdgegenError
from edgegen.train import ddpm
from edgegen.train.families import get_preset
from edgegen.train.runs import load_run, save_run
from edgegen.train.unet import UNet, UNetConfig


def test_unet_shapes_and_label_conditioning():
    torch.manual_seed(0)
    net = UNet(UNetConfig(base_channels=16, channel_mults=(1, 2), num_res_blocks=1)).eval()
    x = torch.randn(3, 1, 16, 16)
    t = torch.tensor([0.0, 500.0, 999.0])
    out = net(x, t, torch.tensor([0, 5, 10]))
    assert out.shape == x.shape
    with torch.no_grad():  # make the label embedding matter, then check it does
        net.label_emb.weight.normal_()
    assert not torch.allclose(net(x, t, torch.tensor([1, 1, 1])), net(x, t, torch.tensor([2, 2, 2])))


def test_presets_and_config_round_trip():
    for name in ddpm.PRESETS:
        cfg = get_preset("ddpm", name)
        assert from_dict(ddpm.DDPMConfig, to_dict(cfg)) == cfg
    n_small = sum(p.numel() for p in UNet(get_preset("ddpm", "small").model).parameters())
    n_base = sum(p.numel() for p in UNet(get_preset("ddpm", "base").model).parameters())
    assert n_small < n_base and n_base > 2_000_000
    with pytest.raises(EdgegenError, match="unknown preset"):
        get_preset("ddpm", "huge")
    with pytest.raises(EdgegenError, match="unknown config field"):
        from_dict(ddpm.DDPMConfig, {"model": {"width": 3}})
    with pytest.raises(EdgegenError, match="must be int"):
        from_dict(ddpm.DDPMConfig, {"train": {"steps": "many"}})


def test_config_check_follows_data_section():
    cfg = get_preset("ddpm", "tiny")
    cfg.data.image_size, cfg.data.channels = 32, 3
    ddpm.check(cfg)
    assert (cfg.model.image_size, cfg.model.in_channels) == (32, 3)
    cfg.data.image_size = 15
    with pytest.raises(EdgegenError, match="must be divisible by 2"):
        ddpm.check(cfg)


def test_tiny_training_lowers_loss_and_run_round_trips(tiny_run):
    run = load_run(tiny_run)
    assert run.stats["steps"] == get_preset("ddpm", "tiny").train.steps
    assert run.stats["final_loss_ema"] < 0.7  # starts near 1.0 (predicting zero noise)
    net = run.modules["denoiser"]
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        a = net(x, torch.tensor([10.0, 10.0]), torch.tensor([1, 2]))
    assert torch.isfinite(a).all()


def test_corrupt_and_mismatched_checkpoints(tiny_run, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text((tiny_run / "config.json").read_text())
    with pytest.raises(EdgegenError, match="missing checkpoint"):
        load_run(bad)
    (bad / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(EdgegenError, match="corrupt or unreadable checkpoint"):
        load_run(bad)
    cfg = get_preset("ddpm", "tiny")
    other = UNet(UNetConfig(base_channels=8, channel_mults=(1,), num_res_blocks=1))
    save_run(bad, "ddpm", cfg, {"denoiser": other}, {})
    with pytest.raises(EdgegenError, match="does not match the denoiser network"):
        load_run(bad)


def test_torchrun_two_processes(tmp_path):
    """The shared loop under torchrun --nproc_per_node=2 (gloo on CPU) writes one run."""
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "edgegen.cli", "train", "ddpm", "--preset", "tiny", "--quiet", "--out", str(out),
           "--train.steps", "8", "--train.batch_size", "16"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    run = load_run(out)
    assert run.stats["world_size"] == 2 and run.stats["steps"] == 8
    assert np.isfinite(run.stats["final_loss_ema"])


def test_train_on_a_folder_of_rgb_images(tmp_path):
    """folder:PATH with class subfolders, 3 channels, 8x8: the network follows the data section."""
    from PIL import Image
    from edgegen.runtimes.api import Pipeline
    from edgegen.train.runs import open_source
    from edgegen.train.runs import train_run
    g = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(g.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(tmp_path / "imgs" / cls / f"{i}.png")
    cfg = get_preset("ddpm", "tiny")
    cfg.data.source, cfg.data.channels, cfg.data.image_size = f"folder:{tmp_path / 'imgs'}", 3, 8
    cfg.train.steps, cfg.train.batch_size = 3, 8
    run = train_run("ddpm", cfg, tmp_path / "run", progress=False)
    loaded = load_run(run)
    assert loaded.config.model.num_classes == 2 and loaded.config.model.in_channels == 3
    out = Pipeline(open_source(run), "torch").sample(2, steps=3, labels=1)
    assert out.shape == (2, 3, 8, 8)
