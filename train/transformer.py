"""A small GPT (Radford et al. 2018/2019, nanoGPT-sized) whose KV cache is an explicit input and output.

One call is one *step* of the token loop::

    logits, present_kv = step(tokens, past_kv)
    tokens     (B, S)                  int64, input-vocabulary ids at positions P .. P+S-1
    past_kv    (B, L, 2, H, P, Dh)     float32, keys [:, :, 0] and values [:, :, 1] of the P earlier tokens
    logits     (B, S, V_out)           float32, next-token logits after every input position
    present_kv (B, L, 2, H, P+S, Dh)   float32, the cache to pass to the next call

Prefill is a call with the whole prompt and an empty past (P = 0); decode is a call with one token.
Positions come from the past length, so the exported graph needs no position input. The same
forward with P = 0 and the whole sequence is the cache-free reference (and the training pass).

The output head covers only the tokens the model generates (image codes): ``V_out`` may be smaller
than the input vocabulary; output index ``c`` is input id ``c + out_offset``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass
class GPTConfig:
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.1
    # Filled in by the recipe from the data (not user settings, but stored with the checkpoint).
    vocab_in: int = 0
    vocab_out: int = 0
    block_size: int = 0  # longest sequence (positions)


class GELU(nn.Module):
    """Exact GELU written with erf, so exporters emit Erf/Mul/Add (TensorRT's ONNX parser has no
    opset-20 Gelu op); the same function as nn.GELU(), and weight-free, so checkpoints are unchanged."""

    def forward(self, x):
        return 0.5 * x * (1.0 + torch.erf(x * (1.0 / math.sqrt(2.0))))


class Block(nn.Module):
    """Pre-norm transformer block; attention reads and extends the cache."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head, self.head_dim = cfg.n_head, cfg.n_embd // cfg.n_head
        self.ln1 = nn.LayerNorm(cfg.n_embd)
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.ln2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = nn.Sequential(nn.Linear(cfg.n_embd, 4 * cfg.n_embd), GELU(),
                                 nn.Linear(4 * cfg.n_embd, cfg.n_embd))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, past: torch.Tensor, mask: torch.Tensor):
        # x (B, S, C); past (B, 2, H, P, Dh); mask (S, P+S) bool, True = may attend
        b, s, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (t.view(b, s, self.n_head, self.head_dim).transpose(1, 2) for t in (q, k, v))  # (B, H, S, Dh)
        k = torch.cat([past[:, 0], k], dim=2)  # (B, H, P+S, Dh)
        v = torch.cat([past[:, 1], v], dim=2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))  # (B, H, S, P+S)
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        y = (self.drop(att) @ v).transpose(1, 2).reshape(b, s, c)
        x = x + self.drop(self.proj(y))
        x = x + self.drop(self.mlp(self.ln2(x)))
        return x, torch.stack([k, v], dim=1)  # present (B, 2, H, P+S, Dh)


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        assert cfg.n_embd % cfg.n_head == 0, "n_embd must be divisible by n_head"
        assert cfg.vocab_in > 0 and cfg.vocab_out > 0 and cfg.block_size > 0, "vocabulary and block size unset"
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_in, cfg.n_embd)
        self.pos = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_out, bias=False)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def empty_past(self, batch: int) -> torch.Tensor:
        c = self.cfg
        return torch.zeros(batch, c.n_layer, 2, c.n_head, 0, c.n_embd // c.n_head)

    def forward(self, tokens: torch.Tensor, past_kv: torch.Tensor):
        b, s = tokens.shape
        p = past_kv.shape[4]
        q_pos = torch.arange(s, device=tokens.device) + p  # (S,) absolute positions
        k_pos = torch.arange(p + s, device=tokens.device)  # (P+S,)
        mask = k_pos[None, :] <= q_pos[:, None]  # (S, P+S) causal, offset by the past
        x = self.drop(self.tok(tokens) + self.pos(q_pos)[None])
        present = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, past_kv[:, i], mask)
            present.append(kv)
        logits = self.head(self.ln_f(x))  # (B, S, V_out)
        return logits, torch.stack(present, dim=1)  # (B, L, 2, H, P+S, Dh)

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Cache-free pass over whole sequences (training and the parity reference): (B, S, V_out)."""
        return self(tokens, self.empty_past(tokens.shape[0]).to(tokens.device))[0]
