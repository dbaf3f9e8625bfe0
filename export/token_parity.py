"""The parity gate for token families (VQ-VAE prior, DALL-E style): exported networks against PyTorch.

Step network (KV cache in and out):
1. single call on random tokens with a non-empty random past: max abs error of logits and present_kv;
2. prefill with an empty past, then 20 one-token decode steps along the reference's greedy
   sequence (prompt, then image tokens; the prefill is shortened when prompt + 20 would pass the
   longest sequence): max abs error of the logits over all 21 calls (bound 1e-4);
3. greedy generation of a whole image with the cache, on the exported network and on PyTorch,
   must give exactly the tokens PyTorch gives *without* a cache (the whole sequence re-run every step).
Static-shape step roles (train/static_kv.py; meta ``static_of``), the same checks:
1. single call (random tokens and cache, a write position inside the capacity);
2. decode role: the prompt prefilled (through the exported prefill role, or chunked), then every
   image token but the last decoded along the reference's greedy sequence: max abs error of the
   logits against PyTorch's cache-free pass (bound 1e-4); prefill role: its logits and new cache
   entries against the dynamic step's prefill;
3. decode role: greedy generation through the exported static roles (runtimes/static_kv.py, the
   runtime's own adapter) must give exactly PyTorch's cache-free tokens and the dynamic cache's.
VQ encoder / decoder: one call on random inputs and one on real data (test digits and their codes);
the encoder's integer codes must match exactly.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgegen.export.example_inputs import example_inputs
from edgegen.manifest import Manifest
from edgegen.runtimes.backends.base import Backend
from edgegen.runtimes.static_kv import StaticKV
from edgegen.runtimes.tokens import TokenSampling, generate, greedy_no_cache

BOUNDS = {"fp32": {"single_call_max_abs": 1e-4, "trajectory_max_abs": 1e-4}}
GATE_SEED = 1234
GATE_BATCH = 4
DECODE_STEPS = 20


@dataclass
class TokenReference:
    role: str
    inputs: dict
    outputs: dict
    trajectory_key: str
    prompt: np.ndarray | None = None  # (B, P) step role: the gate prompts
    prefill: np.ndarray | None = None  # (B, P0) the prefill call's tokens
    fed: np.ndarray | None = None  # (B, DECODE_STEPS) tokens fed in the decode steps
    logits: list = field(default_factory=list)  # the reference logits of each call
    greedy: np.ndarray | None = None  # (B, n) tokens of PyTorch without a cache
    torch_cached: np.ndarray | None = None  # (B, n) tokens of PyTorch with the cache
    data_inputs: dict | None = None  # encoder/decoder: real data
    data_outputs: dict | None = None
    full_logits: np.ndarray | None = None  # static roles: (B, capacity, V) cache-free logits of ``fed``
    prefill_kv: np.ndarray | None = None  # static prefill role: the dynamic step's present_kv of the prompt
    torch_static: np.ndarray | None = None  # static decode role: PyTorch's tokens through the static roles


def _err(a: dict, b: dict) -> float:
    return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)))) if a[k].size else 0.0
               for k in a)


def gate_prompt(manifest: Manifest) -> np.ndarray:
    """(GATE_BATCH, P): labels 0, 1, 2, ... as class tokens or as their stored prompts."""
    from edgegen.runtimes.stages import make_condition
    labels = np.arange(GATE_BATCH) % max(1, manifest.num_classes)
    return make_condition(manifest).prepare(GATE_BATCH, labels).tokens


def _stepper(backend: Backend):
    def step(tokens, past):
        out = backend.run({"tokens": tokens, "past_kv": past})
        return out["logits"], out["present_kv"]
    return step


def _empty(manifest: Manifest, batch: int) -> np.ndarray:
    c = manifest.sampling["cache"]
    return np.zeros((batch, c["layers"], 2, c["heads"], 0, c["head_dim"]), dtype=np.float32)


def _decode_run(backend: Backend, manifest: Manifest, prefill: np.ndarray, fed: np.ndarray) -> list:
    """Prefill (B, P0) with an empty cache, then one call per column of ``fed``: logits of every call."""
    step = _stepper(backend)
    logits, past = step(prefill, _empty(manifest, len(prefill)))
    out = [logits]
    for i in range(fed.shape[1]):
        logits, past = step(fed[:, i:i + 1], past)
        out.append(logits)
    return out


def _greedy_cached(backend: Backend, manifest: Manifest, prompt: np.ndarray) -> np.ndarray:
    s = manifest.sampling
    return generate(_stepper(backend), prompt, s["image_tokens"], _empty(manifest, len(prompt)),
                    TokenSampling(temperature=0.0), GATE_SEED, token_offset=s["code_offset"])


def reference(manifest: Manifest, ref: Backend, real_images: np.ndarray | None = None) -> TokenReference:
    role, s = ref.role_name, manifest.sampling
    if (ref.spec.meta or {}).get("static_of"):
        return _static_reference(manifest, ref)
    inputs = example_inputs(ref.spec, GATE_BATCH, GATE_SEED)
    if role == "decoder":  # codes anywhere in the codebook, not just 0/1
        k = ref.spec.meta["codebook_size"]
        inputs["codes"] = np.random.default_rng(GATE_SEED).integers(0, k, inputs["codes"].shape)
    r = TokenReference(role, inputs, ref.run(inputs), "")
    if role == s["role"]:
        r.prompt = gate_prompt(manifest)
        empty = _empty(manifest, GATE_BATCH)
        r.greedy = greedy_no_cache(lambda seq: ref.run({"tokens": seq, "past_kv": empty})["logits"],
                                   r.prompt, s["image_tokens"], s["code_offset"])
        # The 20 decode steps walk the greedy sequence; when prompt + 20 would pass the longest
        # sequence, the prefill stops earlier and the last prompt tokens are decoded one by one.
        full = np.concatenate([r.prompt, r.greedy + s["code_offset"]], axis=1)
        p0 = max(1, min(r.prompt.shape[1], ref.spec.meta["block_size"] - DECODE_STEPS))
        r.prefill, r.fed = full[:, :p0], full[:, p0:p0 + DECODE_STEPS]
        r.logits = _decode_run(ref, manifest, r.prefill, r.fed)
        r.trajectory_key = f"prefill {p0}+{r.fed.shape[1]} decode"
        r.torch_cached = _greedy_cached(ref, manifest, r.prompt)  # the cache on torch itself
    else:
        r.data_inputs = _real_inputs(manifest, role, real_images)
        real = r.data_inputs
        r.data_outputs = ref.run(real) if real is not None else None
        r.trajectory_key = "test-data call"
    return r


def _real_inputs(manifest: Manifest, role: str, real_images: np.ndarray | None) -> dict | None:
    """Real data for a role: test images for an encoder, their encodings for a decoder, the
    stored label prompts' tokens for a text encoder (latent models)."""
    cond, enc, dec = (manifest.stage(k) or {} for k in ("condition", "encoder", "decoder"))
    if role == (cond.get("encoder") or {}).get("role"):
        from edgegen.runtimes.text import TextEncoder
        tok = cond["tokenizer"]
        text = TextEncoder.from_file(manifest.root / tok["file"], tok["text_length"])
        return {cond["encoder"].get("input", "tokens"): text.encode_batch(cond["label_prompts"][:GATE_BATCH])}
    if real_images is None:
        return None
    if role == dec.get("role") and enc:  # the encodings of real images
        from edgegen.runtimes.backends import create_backend
        encoder = create_backend("torch", manifest, enc["role"])
        return {dec.get("input", "codes"): encoder.run({enc.get("input", "x"): real_images})[enc.get("output", "codes")]}
    return {enc.get("input", "x"): real_images}


def gate(manifest: Manifest, ref: TokenReference, other: Backend, precision: str = "fp32") -> dict:
    bounds = BOUNDS[precision]
    single = _err(ref.outputs, other.run(ref.inputs))
    result = {"backend": other.name, "precision": precision, "single_call_max_abs": single,
              "trajectory": ref.trajectory_key, "bounds": bounds}
    ok = single <= bounds["single_call_max_abs"]
    if ref.full_logits is not None:
        ok = _static_gate(manifest, ref, other, precision, result) and ok
    elif ref.prompt is not None:
        logits = _decode_run(other, manifest, ref.prefill, ref.fed)
        drift = max(float(np.max(np.abs(a.astype(np.float64) - b))) for a, b in zip(ref.logits, logits))
        cached = _greedy_cached(other, manifest, ref.prompt)
        match = bool(np.array_equal(cached, ref.greedy))
        torch_match = bool(np.array_equal(ref.torch_cached, ref.greedy))
        result.update({"trajectory_max_abs": drift, "prefill": int(ref.prefill.shape[1]),
                       "decode_steps": int(ref.fed.shape[1]),
                       "greedy_tokens": int(ref.greedy.size), "greedy_matches_torch_no_cache": match,
                       "greedy_mismatches": int((cached != ref.greedy).sum()),
                       "torch_greedy_with_cache_matches_no_cache": torch_match})
        ok = ok and drift <= bounds["trajectory_max_abs"] and match and torch_match
    else:
        drift = _err(ref.data_outputs, other.run(ref.data_inputs)) if ref.data_inputs is not None else 0.0
        result["trajectory_max_abs"] = drift
        ok = ok and drift <= bounds["trajectory_max_abs"]
    result["passed"] = bool(ok)
    return result


# -- the static-shape cache (train/static_kv.py) -------------------------------------------------
def _static_reference(manifest: Manifest, ref: Backend) -> TokenReference:
    s, spec, role = manifest.sampling, ref.spec, ref.role_name
    info = s["static_kv"]
    inputs = example_inputs(spec, GATE_BATCH, GATE_SEED)
    seq, cap = spec.inputs[0].shape[1], int(spec.meta["capacity"])
    inputs[info["position_input"]] = np.array([min(3, cap - seq)], dtype=np.int64)  # slots 0..pos-1 are read
    r = TokenReference(role, inputs, ref.run(inputs), "")
    from edgegen.runtimes.backends import create_backend
    module = getattr(ref, "module", None)  # the torch reference: its GPT is the dynamic step's network
    base = create_backend("torch", manifest, s["role"], **({"module": module.gpt} if module is not None else {}))
    empty = _empty(manifest, GATE_BATCH)
    r.prompt = gate_prompt(manifest)
    r.greedy = greedy_no_cache(lambda seq_: base.run({"tokens": seq_, "past_kv": empty})["logits"],
                               r.prompt, s["image_tokens"], s["code_offset"])
    r.fed = np.concatenate([r.prompt, r.greedy[:, :-1] + s["code_offset"]], axis=1)  # every token fed
    r.full_logits = base.run({"tokens": r.fed, "past_kv": empty})["logits"]
    p = int(info["prefill_len"])
    if role == info["decode"]:
        r.trajectory_key = f"static prefill {p}+{r.fed.shape[1] - p} decode"
        r.torch_cached = _greedy_cached(base, manifest, r.prompt)
        prefill = ref if info["prefill"] == role else create_backend("torch", manifest, info["prefill"],
                                                                      **({"module": module} if module is not None else {}))
        r.torch_static = _greedy_static(manifest, ref, prefill, r.prompt)
    else:
        r.trajectory_key = f"static prefill {p}"
        r.prefill_kv = base.run({"tokens": r.fed[:, :p], "past_kv": empty})["present_kv"]
    return r


def _static_kv(manifest: Manifest, decode: Backend, prefill: Backend | None) -> StaticKV:
    return StaticKV(manifest.sampling["static_kv"], manifest.sampling["cache"], decode.run,
                    prefill.run if prefill is not None else None)


def _greedy_static(manifest: Manifest, decode: Backend, prefill: Backend, prompt: np.ndarray) -> np.ndarray:
    s, kv = manifest.sampling, _static_kv(manifest, decode, prefill)
    return generate(kv, prompt, s["image_tokens"], kv.empty(len(prompt)), TokenSampling(temperature=0.0),
                    GATE_SEED, token_offset=s["code_offset"])


def _static_gate(manifest: Manifest, ref: TokenReference, other: Backend, precision: str, result: dict) -> bool:
    """The static roles' trajectory and greedy checks (module doc); fills ``result``, returns passed."""
    bounds, info = BOUNDS[precision], manifest.sampling["static_kv"]
    p = int(info["prefill_len"])
    if other.role_name != info["decode"]:  # the prefill role: one call on the prompt from an empty cache
        cache = np.zeros((GATE_BATCH, *StaticKV(info, manifest.sampling["cache"], other.run).cache_shape), np.float32)
        out = other.run({"tokens": ref.fed[:, :p], info["cache_input"]: cache,
                         info["position_input"]: np.zeros(1, np.int64)})
        drift = max(_err({"a": out["logits"]}, {"a": ref.full_logits[:, :p]}),
                    _err({"a": out[info["new_output"]]}, {"a": ref.prefill_kv}))
        result.update({"trajectory_max_abs": drift, "prefill": p})
        return drift <= bounds["trajectory_max_abs"]
    from edgegen.runtimes.backends import create_backend
    have = manifest.formats(info["prefill"]).get(other.format, {})  # none: that role was refused in this format
    prefill = other if info["prefill"] == info["decode"] else create_backend(
        other.name, manifest, info["prefill"], precision if precision in have else "fp32") if have else None
    kv = _static_kv(manifest, other, prefill)
    logits, past = kv(ref.fed[:, :p], kv.empty(GATE_BATCH))  # one prefill call, or the last chunk's logits
    drift = _err({"a": logits}, {"a": ref.full_logits[:, p - logits.shape[1]:p]})
    for t in range(p, ref.fed.shape[1]):
        logits, past = kv(ref.fed[:, t:t + 1], past)
        drift = max(drift, _err({"a": logits}, {"a": ref.full_logits[:, t:t + 1]}))
    tokens = _greedy_static(manifest, other, prefill, ref.prompt)
    match = bool(np.array_equal(tokens, ref.greedy))
    result.update({"trajectory_max_abs": drift, "prefill": p if kv.prefill is not None else "chunked",
                   "decode_steps": int(ref.fed.shape[1] - p),
                   "greedy_tokens": int(ref.greedy.size), "greedy_matches_torch_no_cache": match,
                   "greedy_mismatches": int((tokens != ref.greedy).sum()),
                   "greedy_matches_dynamic_cache": bool(np.array_equal(tokens, ref.torch_cached)),
                   "torch_static_matches_no_cache": bool(np.array_equal(ref.torch_static, ref.greedy))})
    return (drift <= bounds["trajectory_max_abs"] and match and result["greedy_matches_dynamic_cache"]
            and result["torch_static_matches_no_cache"])
