"""VQ-VAE: the loss terms, straight-through gradients, EMA codebook, codebook statistics, the recipe."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgegen.errors import EdgegenError
from edgegen.train.transformer import GPT, GPTConfig
from edgegen.train.vq_nets import VQVAE, VQConfig, split_roles
from edgegen.train.vqvae import codebook_stats


def test_loss_is_recon_plus_codebook_plus_beta_commitment_with_straight_through():
    torch.manual_seed(0)
    vq = VQVAE(VQConfig(channels=8, res_blocks=1, codebook_size=8, code_dim=4, ema=False, beta=0.25))
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    x_hat, k, t = vq(x)
    assert x_hat.shape == x.shape and k.shape == (4, 8, 8)
    assert torch.allclose(t["loss"], t["recon"] + t["codebook"] + 0.25 * t["commit"])
    # straight-through: the reconstruction term alone reaches the encoder through the quantizer
    t["recon"].backward()
    assert vq.encoder.net[0].weight.grad.abs().sum() > 0
    assert vq.codebook.embed.grad is None or vq.codebook.embed.grad.abs().sum() == 0  # sg[] on the codes
    # the codebook term moves only the codebook, the commitment term only the encoder
    vq.zero_grad()
    _, _, t = vq(x)
    t["codebook"].backward()
    assert vq.codebook.embed.grad.abs().sum() > 0
    grad = vq.encoder.net[0].weight.grad
    assert grad is None or grad.abs().sum() == 0


def test_ema_codebook_moves_codes_to_the_mean_of_their_encoder_outputs():
    torch.manual_seed(0)
    cfg = VQConfig(channels=8, res_blocks=1, codebook_size=4, code_dim=2, ema=True, ema_decay=0.0)
    vq = VQVAE(cfg).train()
    assert "embed" not in dict(vq.named_parameters()).keys()  # a buffer under EMA
    z = torch.randn(2, 2, 3, 3)
    k = vq.codebook.indices(z)
    vq.codebook.ema_update(z, k)
    flat = z.permute(0, 2, 3, 1).reshape(-1, 2)
    for j in k.unique():
        assert torch.allclose(vq.codebook.embed[j], flat[k.reshape(-1) == j].mean(0), atol=1e-4)


def test_codebook_stats_usage_perplexity_dead_codes():
    s = codebook_stats(np.array([[0, 0], [1, 1]]), 4)
    assert s["codes_used"] == 2 and s["usage"] == 0.5 and s["dead_codes"] == [2, 3]
    assert s["perplexity"] == pytest.approx(2.0)


def test_encode_decode_roles_share_the_trained_codebook():
    vq = VQVAE(VQConfig(channels=8, res_blocks=1, codebook_size=8, code_dim=4)).eval()
    enc, dec = split_roles(vq)
    x = torch.rand(3, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        x_hat, k, _ = vq(x)
        assert torch.equal(enc(x), k)
        assert torch.allclose(dec(k), x_hat, atol=1e-6)


def test_gpt_cache_gives_the_same_logits_as_the_full_pass():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=16, dropout=0.0, vocab_in=20, vocab_out=7, block_size=12)).eval()
    seq = torch.randint(0, 20, (3, 10))
    with torch.no_grad():
        full = gpt.logits(seq)
        logits, past = gpt(seq[:, :4], gpt.empty_past(3))
        steps = [logits]
        for i in range(4, 10):
            logits, past = gpt(seq[:, i:i + 1], past)
            steps.append(logits)
    assert past.shape == (3, 2, 2, 2, 10, 8)
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)


def test_tiny_recipe_trains_and_reports(tmp_path):
    from edgegen.train.families import get_preset
    from edgegen.train.runs import load_run, train_run
    run = train_run("vqvae", get_preset("vqvae", "tiny"), tmp_path / "vq", progress=False)
    stats = json.loads((run / "config.json").read_text())["stats"]
    test = stats["vq"]["test"]
    assert {"recon_mse", "usage", "perplexity", "dead_codes", "codes_used"} <= set(test)
    assert np.isfinite(stats["prior"]["test_nll_per_code"])
    loaded = load_run(run)
    assert set(loaded.modules) == {"prior", "decoder", "encoder"}


def test_bad_config_is_one_line_error():
    from edgegen.train.families import get_preset
    from edgegen.train.vqvae import check
    cfg = get_preset("vqvae", "tiny")
    cfg.vq.levels = 5
    with pytest.raises(EdgegenError, match="divisible"):
        check(cfg)
