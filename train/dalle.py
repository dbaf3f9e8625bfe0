"""DALL-E style text-to-image (Ramesh et al. 2021), digit-sized.

1. A VQ-VAE (vq_nets.py) turns each image into a grid of discrete image tokens.
2. Captions come from the labels (captions.py, varied templates); a BPE tokenizer is trained on
   them (tokenizer.py, Hugging Face ``tokenizers``); text is right-padded to a fixed length T.
3. One transformer (transformer.py) over [text tokens (T); image tokens (h*w)] is trained with
   next-token cross-entropy on the image tokens. The input vocabulary is the text vocabulary
   followed by the K codes (code c is input id T_vocab + c); the head predicts the K codes.

Sampling (runtimes/tokens.py): tokenize the prompt, prefill the T text tokens with an empty
KV cache, decode h*w image tokens one at a time, decode the grid with the VQ decoder.
Exported roles: ``transformer`` (the step network), ``decoder``, ``encoder``; plus tokenizer.json.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from edgegen.errors import EdgegenError
from edgegen.roles import RoleSpec
from edgegen.train import captions
from edgegen.train.data import load_images
from edgegen.train.loop import TrainConfig
from edgegen.train.transformer import GPT, GPTConfig
from edgegen.train.vq_nets import VQConfig
from edgegen.train.vqvae import (DataConfig, TokenSamplingConfig, build_vq, check_gpt, check_vq, encode_images,
                                 eval_nll, gpt_preset, step_role, token_sampling, train_gpt, train_vq, vq_preset,
                                 vq_report, vq_roles)

TOKENIZER_FILE = "tokenizer.json"


@dataclass
class TextConfig:
    text_length: int = 12  # T: every caption padded (right) to this many tokens
    vocab_size: int = 96  # BPE target size (the corpus may give fewer)
    captions_per_image: int = 4  # training pairs per image, each with a random template
    vocab: int = 0  # the trained tokenizer's size (set by training)


@dataclass
class DalleConfig:
    vq: VQConfig = field(default_factory=VQConfig)
    transformer: GPTConfig = field(default_factory=GPTConfig)
    text: TextConfig = field(default_factory=TextConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)  # stage 1 (VQ-VAE)
    transformer_train: TrainConfig = field(default_factory=TrainConfig)  # stage 2
    sampling: TokenSamplingConfig = field(default_factory=TokenSamplingConfig)
    num_classes: int = 10


PRESETS = ("tiny", "small", "base")


def preset(name: str) -> DalleConfig:
    vq, vq_train = vq_preset(name)
    vq.levels = 2  # a 4x4 grid of image tokens: T + 16 positions
    if name != "tiny":
        vq.codebook_size, vq_train.steps = 128, 600 if name == "small" else 2000
    gpt, gpt_train = gpt_preset(name)
    if name == "small":
        gpt_train.steps = 2500
    return DalleConfig(vq=vq, transformer=gpt, train=vq_train, transformer_train=gpt_train)


def check(cfg: DalleConfig) -> None:
    check_vq(cfg.vq, cfg.data)
    check_gpt(cfg.transformer)
    if cfg.text.text_length < 1:
        raise EdgegenError(f"text.text_length must be >= 1, got {cfg.text.text_length}")
    if cfg.text.captions_per_image < 1:
        raise EdgegenError("text.captions_per_image must be >= 1")
    if cfg.text.vocab:
        g = cfg.transformer
        g.vocab_in, g.vocab_out = cfg.text.vocab + cfg.vq.codebook_size, cfg.vq.codebook_size
        g.block_size = cfg.text.text_length + cfg.vq.grid ** 2 - 1  # the last image token is never fed


def _trained(cfg: DalleConfig) -> None:
    check(cfg)
    if not cfg.text.vocab:
        raise EdgegenError("this DALL-E config has no trained tokenizer (text.vocab is 0): train it first")


def roles(cfg: DalleConfig) -> dict[str, RoleSpec]:
    _trained(cfg)
    return {"transformer": step_role(cfg.transformer), **vq_roles(cfg.vq)}


def build(cfg: DalleConfig) -> dict[str, torch.nn.Module]:
    _trained(cfg)
    return {"transformer": GPT(cfg.transformer), **build_vq(cfg.vq)}


def sampling_info(cfg: DalleConfig) -> dict:
    _trained(cfg)
    g = cfg.transformer
    return {"kind": "tokens", "role": "transformer", "decoder": "decoder", "encoder": "encoder",
            "condition": "text", "tokenizer": {"file": TOKENIZER_FILE, "text_length": cfg.text.text_length},
            "label_prompts": captions.label_prompts(),
            "code_offset": cfg.text.vocab, "image_tokens": cfg.vq.grid ** 2, "grid": [cfg.vq.grid, cfg.vq.grid],
            "cache": {"layers": g.n_layer, "heads": g.n_head, "head_dim": g.n_embd // g.n_head},
            "defaults": token_sampling(cfg.sampling)}


def data_info(cfg: DalleConfig) -> dict:
    return {"source": cfg.data.source, "shape": [cfg.data.channels, cfg.data.image_size, cfg.data.image_size],
            "range": [-1.0, 1.0], "layout": "NCHW", "num_classes": cfg.num_classes, "null_label": None}


def sequences(text, texts: list[str], codes: np.ndarray, code_offset: int) -> np.ndarray:
    """[text ids (T); image ids (h*w)] per pair: (N, T + h*w) int64."""
    return np.concatenate([text.encode_batch(texts), codes.reshape(len(codes), -1) + code_offset], axis=1)


def train(cfg: DalleConfig, progress: bool = True) -> tuple[dict[str, torch.nn.Module], dict]:
    from edgegen.runtimes.text import TextEncoder
    from edgegen.train.tokenizer import train_tokenizer
    check(cfg)
    data = load_images(cfg.data.source, "train", cfg.data.image_size, cfg.data.channels)
    test = load_images(cfg.data.source, "test", cfg.data.image_size, cfg.data.channels)
    if data.num_classes != len(captions.WORDS):
        raise EdgegenError("the DALL-E recipe captions digits: it needs a data set with 10 labelled classes")
    tok = train_tokenizer(captions.corpus(), cfg.text.vocab_size, captions.ALPHABET)
    cfg.text.vocab = tok.get_vocab_size()
    check(cfg)
    text = TextEncoder(tok, cfg.text.text_length)
    longest = max(len(tok.encode(c).ids) for c in captions.corpus() + captions.corpus(captions.HELD_OUT_TEMPLATES))
    if longest > cfg.text.text_length:
        raise EdgegenError(f"text.text_length {cfg.text.text_length} is shorter than the longest caption "
                           f"({longest} tokens)")

    enc, dec, vq_stats = train_vq(cfg.vq, cfg.train, data.images, progress)
    vq_stats["test"] = vq_report(enc, dec, test.images, cfg.vq.codebook_size)
    codes = encode_images(enc, data.images)  # (N, h, w)
    r = cfg.text.captions_per_image
    texts = [c for k in range(r) for c in captions.random_captions(data.labels, cfg.train.seed + k)]
    seqs = sequences(text, texts, np.concatenate([codes] * r), cfg.text.vocab)  # (N*r, T + h*w)

    cfg.transformer_train.threads = cfg.transformer_train.threads or cfg.train.threads
    t = cfg.text.text_length
    gpt, gpt_stats = train_gpt(cfg.transformer, cfg.transformer_train, seqs, t, cfg.text.vocab, progress,
                               "train transformer")
    test_codes = encode_images(enc, test.images)
    held = captions.random_captions(test.labels, 99, captions.HELD_OUT_TEMPLATES)
    gpt_stats["test_nll_per_code_held_out_templates"] = eval_nll(
        gpt, sequences(text, held, test_codes, cfg.text.vocab), t, cfg.text.vocab)
    stats = {"vq": vq_stats, "transformer": gpt_stats, "tokenizer_vocab": cfg.text.vocab,
             "files": {TOKENIZER_FILE: tok.to_str()}}  # written into the run folder by save_run
    return {"transformer": gpt, "decoder": dec, "encoder": enc}, stats
