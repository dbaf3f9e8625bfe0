"""The static-shape step network (issue 17): the GPT step with a fixed-capacity KV cache.

The step role of train/transformer.py has dynamic ``seq`` and ``past`` dims: OpenVINO compiles such
a model for any shape and runs it about 3x slower than onnxruntime. The static variant has one
shape per role::

    logits, kv_new = step(tokens, kv_cache, pos)
    tokens    (B, S)                 int64, input ids at positions pos .. pos+S-1 (S fixed per role)
    kv_cache  (B, L, 2, H, C, Dh)    float32, C = capacity = block_size; slots pos.. are ignored
    pos       (1,)                   int64, the write position: tokens already in the cache
    logits    (B, S, V_out)          float32
    kv_new    (B, L, 2, H, S, Dh)    float32, keys/values of the S new tokens: the runtime writes
                                     them into slots pos .. pos+S-1 (runtimes/static_kv.py, tokens.cpp)

Attention runs over all C slots with a mask computed from ``pos`` (slot c is visible to the query
at position q when c <= q); inside the graph the new keys/values take their slots first. Returning
only the new entries keeps each call's output small (the cache is read, never copied out).

Two roles are exported beside the dynamic step role: ``<step>_static`` (S = 1, decode) and, when
the prompt is longer than one token, ``<step>_prefill_static`` (S = the prompt length, one call
for the whole prompt). The generator stage's ``static_kv`` entry names them.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from edgegen.roles import RoleSpec, TensorSpec
from edgegen.train.transformer import GPT, Block

CACHE_INPUT, POSITION_INPUT, NEW_OUTPUT = "kv_cache", "pos", "kv_new"


def _block(blk: Block, x: torch.Tensor, cache: torch.Tensor, mask: torch.Tensor, src: torch.Tensor,
           write: torch.Tensor):
    """Block.forward over a fixed-capacity cache. x (B, S, C); cache (B, 2, H, Cap, Dh); mask (S, Cap);
    src (Cap,) the new row each slot would take, write (Cap,) whether it takes it."""
    b, s, c = x.shape
    q, k, v = blk.qkv(blk.ln1(x)).split(c, dim=2)
    q, k, v = (t.view(b, s, blk.n_head, blk.head_dim).transpose(1, 2) for t in (q, k, v))  # (B, H, S, Dh)
    new = torch.stack([k, v], dim=1)  # (B, 2, H, S, Dh)
    full = torch.where(write[:, None], new.index_select(3, src), cache)  # (B, 2, H, Cap, Dh)
    att = (q @ full[:, 0].transpose(-2, -1)) * (1.0 / math.sqrt(blk.head_dim))  # (B, H, S, Cap)
    att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
    y = (blk.drop(att) @ full[:, 1]).transpose(1, 2).reshape(b, s, c)
    x = x + blk.drop(blk.proj(y))
    x = x + blk.drop(blk.mlp(blk.ln2(x)))
    return x, new


class StaticStep(nn.Module):
    """The GPT's step with a static cache (module doc); shares the GPT's weights (state keys ``gpt.*``)."""

    def __init__(self, gpt: GPT):
        super().__init__()
        self.gpt = gpt

    def forward(self, tokens: torch.Tensor, kv_cache: torch.Tensor, pos: torch.Tensor):
        g = self.gpt
        s, cap = tokens.shape[1], kv_cache.shape[4]
        q_pos = pos + torch.arange(s, device=tokens.device)  # (S,) absolute positions
        k_pos = torch.arange(cap, device=tokens.device)  # (Cap,)
        mask = k_pos[None, :] <= q_pos[:, None]  # (S, Cap) causal over the filled slots
        row = k_pos - pos  # (Cap,) the new token slot c takes, when 0 <= row < S
        write = (row >= 0) & (row < s)
        src = row.clamp(0, s - 1)
        x = g.drop(g.tok(tokens) + g.pos(q_pos)[None])
        new = []
        for i, block in enumerate(g.blocks):
            x, kv = _block(block, x, kv_cache[:, i], mask, src, write)
            new.append(kv)
        return g.head(g.ln_f(x)), torch.stack(new, dim=1)  # (B, S, V_out), (B, L, 2, H, S, Dh)


def static_role(spec: RoleSpec, g, seq: int, base: str) -> RoleSpec:
    """The static variant's interface for a GPT config ``g`` and ``seq`` tokens per call."""
    head_dim = g.n_embd // g.n_head
    cache = ("batch", g.n_layer, 2, g.n_head)
    return RoleSpec(
        inputs=(TensorSpec("tokens", ("batch", seq), "int64"),
                TensorSpec(CACHE_INPUT, (*cache, g.block_size, head_dim), "float32"),
                TensorSpec(POSITION_INPUT, (1,), "int64")),
        outputs=(TensorSpec("logits", ("batch", seq, g.vocab_out), "float32"),
                 TensorSpec(NEW_OUTPUT, (*cache, seq, head_dim), "float32")),
        meta={**{k: v for k, v in spec.meta.items() if k != "example_dims"}, "static_of": base,
              "position_input": POSITION_INPUT, "capacity": g.block_size})


def add_static_kv(data: dict, modules: dict) -> None:
    """Add the static step roles of a token model to an export source (manifest data and modules).

    The prompt length is block_size + 1 - image_tokens (both token families size the block so:
    the prompt, then every image token but the last is fed)."""
    gen = data["pipeline"]["generator"]
    if gen.get("kind") != "tokens" or "static_kv" in gen:
        return
    base = gen["role"]
    gpt = modules[base]
    g = gpt.cfg
    prompt_len = g.block_size + 1 - int(gen["image_tokens"])
    if prompt_len < 1:
        return  # not a layout this knows: the bundle keeps only the dynamic step
    spec = RoleSpec.from_json(data["roles"][base])
    decode, prefill = f"{base}_static", f"{base}_prefill_static" if prompt_len > 1 else f"{base}_static"
    step = StaticStep(gpt).eval()
    if prefill != decode:  # first: the decode role's gate runs the whole loop through both
        data["roles"][prefill] = static_role(spec, g, prompt_len, base).to_json()
        modules[prefill] = step
    data["roles"][decode] = static_role(spec, g, 1, base).to_json()
    modules[decode] = step
    gen["static_kv"] = {"decode": decode, "prefill": prefill, "prefill_len": prompt_len, "capacity": g.block_size,
                        "cache_input": CACHE_INPUT, "position_input": POSITION_INPUT, "new_output": NEW_OUTPUT}
