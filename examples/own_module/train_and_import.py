"""Bring your own PyTorch denoiser: train tiny_unet.py your way, import it, sample it everywhere.

    OMP_NUM_THREADS=1 .venv/bin/python examples/own_module/train_and_import.py [--steps 800] [--out build/own_module]

1. Trains TinyUNet (tiny_unet.py, plain PyTorch, no edgegen) on scikit-learn's 8x8 digits upscaled
   to 16x16, eps-prediction under linear betas (T = 1000), labels dropped 10% of the time (the
   null label 10, for classifier-free guidance). ``--steps 0`` keeps the random weights.
2. Saves what a user has: the state dict as safetensors and a diffusers scheduler config
   (scheduler_config.json, DDIMScheduler, trailing spacing).
3. ``edgegen import --module tiny_unet.py:TinyUNet ...`` -> a bundle (ONNX, OpenVINO, parity gate).
4. Samples the same seed on onnxruntime, openvino, native (when built) and torch, prints how far
   each is from onnxruntime, and writes a grid of digits 0..9 (guidance 2) to OUT/samples.png.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
T, BETA_START, BETA_END, NULL = 1000, 1e-4, 0.02, 10
SCHEDULER = {"_class_name": "DDIMScheduler", "num_train_timesteps": T, "beta_schedule": "linear",
             "beta_start": BETA_START, "beta_end": BETA_END, "prediction_type": "epsilon", "clip_sample": True,
             "set_alpha_to_one": False, "timestep_spacing": "trailing"}


def digits() -> torch.Tensor:
    """(1797, 1, 16, 16) in [-1, 1]: scikit-learn's digits (0..16 grey levels), bilinear to 16x16."""
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 8.0 - 1.0)[:, None]
    return torch.nn.functional.interpolate(x, size=16, mode="bilinear", align_corners=False), torch.from_numpy(d.target)


def train(net: torch.nn.Module, steps: int, batch: int = 64, seed: int = 0) -> None:
    """The user's own DDPM training loop (Ho et al. 2020): eps-prediction, uniform t."""
    x_all, y_all = digits()
    alpha_bar = torch.cumprod(1 - torch.linspace(BETA_START, BETA_END, T, dtype=torch.float64), 0).float()
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=max(steps, 1))
    g = torch.Generator().manual_seed(seed)
    net.train()
    t0 = time.time()
    for step in range(steps):
        i = torch.randint(0, len(x_all), (batch,), generator=g)
        x0, y = x_all[i], y_all[i].clone()
        y[torch.rand(batch, generator=g) < 0.1] = NULL
        t = torch.randint(0, T, (batch,), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        a = alpha_bar[t][:, None, None, None]
        loss = torch.nn.functional.mse_loss(net(a.sqrt() * x0 + (1 - a).sqrt() * eps, t.float(), y), eps)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 250 == 0 or step == steps - 1:
            print(f"step {step:5d}  loss {loss.item():.4f}  {time.time() - t0:.0f} s", flush=True)
    net.eval()


def edgegen(*args: str) -> None:
    cmd = [sys.executable, "-m", "edgegen.cli", *args]
    print("$ edgegen " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=800, help="training steps (0: random weights)")
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--out", type=Path, default=Path("build/own_module"))
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    sys.path.insert(0, str(HERE))
    from tiny_unet import TinyUNet  # the user's module, as the user imports it
    torch.manual_seed(0)
    kwargs = {"in_channels": 1, "width": a.width, "num_classes": 10, "emb": 64}
    net = TinyUNet(**kwargs)
    train(net, a.steps)

    from safetensors.torch import save_file
    weights, config = a.out / "tiny_unet.safetensors", a.out / "scheduler_config.json"
    save_file(net.state_dict(), str(weights))
    config.write_text(json.dumps(SCHEDULER, indent=1))

    bundle = a.out / "bundle"
    edgegen("import", "--module", f"{HERE / 'tiny_unet.py'}:TinyUNet", "--weights", str(weights),
            "--kwargs", json.dumps(kwargs), "--scheduler", str(config), "--shape", "1,16,16",
            "--num-classes", "10", "--null-label", "--steps", "20", "--out", str(bundle), "--quiet")

    from edgegen.images import save_grid
    from edgegen.runtimes.api import open_pipeline
    from edgegen.runtimes.backends.native_backend import NativeBackend
    labels = np.arange(40) % 10
    backends = ["onnxruntime", "openvino", "torch"] + ([] if NativeBackend.unavailable() else ["native"])
    ref = None
    for backend in backends:
        t0 = time.perf_counter()
        x = open_pipeline(bundle, backend).sample(40, seed=0, labels=labels, guidance=2.0)
        ms = 1000 * (time.perf_counter() - t0)
        ref = x if ref is None else ref
        print(f"{backend:12s} 40 samples, 20 DDIM steps, guidance 2: {ms:7.0f} ms, max |x - onnxruntime| "
              f"{np.abs(x - ref).max():.2e}")
    save_grid(a.out / "samples.png", ref, nrow=10)
    print(f"wrote {a.out / 'samples.png'} (digits 0..9 by column)")
    edgegen("sample", str(bundle), "--label", "7", "--n", "8", "--steps", "10", "--sampler", "dpmpp_2m",
            "--out", str(a.out / "sevens.png"), "--quiet")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
