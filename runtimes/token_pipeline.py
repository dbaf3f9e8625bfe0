"""Sampling for token families (manifest ``sampling.kind == "tokens"``): VQ-VAE prior, DALL-E style.

condition (class token, or the tokenized prompt) -> shared token loop (runtimes/tokens.py) on the
step network with its KV cache -> code grid -> VQ decoder -> image. Backends only run network calls.

    pipe = open_pipeline("bundles/dalle-small", backend="onnxruntime")
    images = pipe.sample(16, seed=0, prompt="a handwritten seven", top_k=20)
"""
from __future__ import annotations

import time
from typing import Optional, Union

import numpy as np
from tqdm import tqdm

from edgegen.errors import EdgegenError
from edgegen.manifest import Manifest
from edgegen.runtimes.backends import backend_class, create_backend
from edgegen.runtimes.backends.base import Backend
from edgegen.runtimes.tokens import TokenSampling, generate

PLAN_ONLY = ("sampler", "steps", "eta", "guidance", "clip_x0")


class TokenPipeline:
    """Not thread-safe: use one per thread.

    ``backend`` is a backend name for every role, or ``{role: Backend}`` (roles left out get a
    backend of the same name as the first given), or None for conditioning only.
    """

    def __init__(self, manifest: Manifest, backend: Union[str, Backend, dict] = "onnxruntime",
                 precision: str = "fp32", **backend_opts):
        self.manifest = manifest
        self.sampling = s = manifest.sampling
        given = backend if isinstance(backend, dict) else {s["role"]: backend} if isinstance(backend, Backend) else {}
        name = backend if isinstance(backend, str) or not given else next(iter(given.values())).name

        def get(role: str) -> Backend:
            if role not in given and hasattr(backend_class(name), "run_plan"):
                raise EdgegenError(f"backend '{name}' runs whole sampler plans; token models run on "
                                   "torch, onnxruntime or openvino")
            return given.get(role) or create_backend(name, manifest, role, precision, **backend_opts)

        # backend=None: conditioning only (the parity gate builds prompts that way)
        self.backend = get(s["role"]) if backend is not None else None  # step network (KV cache in/out)
        self.decoder = get(s["decoder"]) if backend is not None else None
        self._text = None
        self.eval_seconds = 0.0  # time spent inside network calls, for profiling
        self.eval_calls = 0

    # -- networks ------------------------------------------------------------------
    def step(self, tokens: np.ndarray, past_kv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t0 = time.perf_counter()
        out = self.backend.run({"tokens": tokens, "past_kv": past_kv})
        self.eval_seconds += time.perf_counter() - t0
        self.eval_calls += 1
        return out["logits"], out["present_kv"]

    def empty_past(self, batch: int) -> np.ndarray:
        c = self.sampling["cache"]
        return np.zeros((batch, c["layers"], 2, c["heads"], 0, c["head_dim"]), dtype=np.float32)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """codes (N, h, w) -> images (N, C, S, S)."""
        t0 = time.perf_counter()
        x = self.decoder.run({"codes": codes})["x"]
        self.eval_seconds += time.perf_counter() - t0
        return x

    # -- conditioning --------------------------------------------------------------
    def labels(self, n: int, labels=None) -> np.ndarray:
        from edgegen.runtimes.api import Pipeline
        return Pipeline.labels(self, n, labels)  # the same checks as plan families

    @property
    def text(self):
        if self._text is None:
            from edgegen.runtimes.text import TextEncoder
            tok = self.sampling["tokenizer"]
            self._text = TextEncoder.from_file(self.manifest.root / tok["file"], tok["text_length"])
        return self._text

    def prompts_for(self, n: int, labels=None, prompt=None) -> list[str]:
        """The n prompts: ``prompt`` (one string, or n strings), else the stored prompt of each label."""
        if prompt is None:
            return [self.sampling["label_prompts"][int(y)] for y in self.labels(n, labels)]
        if labels is not None:
            raise EdgegenError("give a prompt or labels, not both")
        if isinstance(prompt, str):
            return [prompt] * n
        prompt = list(prompt)
        if len(prompt) != n:
            raise EdgegenError(f"got {len(prompt)} prompts for {n} samples")
        return prompt

    def condition(self, n: int, labels=None, prompt=None) -> np.ndarray:
        """The prompt tokens every sample starts from: (n, P) int64."""
        if self.sampling["condition"] == "text":
            return self.text.encode_batch(self.prompts_for(n, labels, prompt))
        if prompt is not None:
            raise EdgegenError("this model is class-conditional: it takes --label, not --prompt")
        return (self.sampling["label_token_offset"] + self.labels(n, labels))[:, None]

    def token_sampling(self, temperature=None, top_k=None, top_p=None) -> TokenSampling:
        d = self.sampling.get("defaults", {})
        if top_k is None:
            top_k = d.get("top_k") or None  # 0 in the bundle = off
        return TokenSampling(d.get("temperature", 1.0) if temperature is None else temperature, top_k,
                             d.get("top_p", 1.0) if top_p is None else top_p).check()

    # -- sampling ------------------------------------------------------------------
    def sample_codes(self, n: int, seed: int = 0, labels=None, prompt=None, temperature=None, top_k=None,
                     top_p=None, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """Code grids (n, h, w) int64; same seed -> same codes whatever the batch size."""
        cfg = self.token_sampling(temperature, top_k, top_p)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
            raise EdgegenError(f"n must be a positive integer, got {n}")
        if not 0 <= int(seed) < 2**64:
            raise EdgegenError(f"seed must be in [0, 2**64), got {seed}")
        if batch_size <= 0:
            raise EdgegenError(f"batch size must be positive, got {batch_size}")
        cond = self.condition(n, labels, prompt)
        s = self.sampling
        n_tok, (h, w) = s["image_tokens"], s["grid"]
        codes = np.zeros((n, n_tok), dtype=np.int64)
        bar = tqdm(total=n * n_tok, desc=f"tokens on {self.backend.name}", disable=not progress,
                   dynamic_ncols=True)
        for start in range(0, n, batch_size):
            b = min(batch_size, n - start)
            codes[start:start + b] = generate(self.step, cond[start:start + b], n_tok, self.empty_past(b), cfg,
                                              int(seed), first_sample=start, token_offset=s["code_offset"],
                                              on_token=lambda i, b=b: bar.update(b))
        bar.close()
        return codes.reshape(n, h, w)

    def sample(self, n: int, seed: int = 0, labels=None, prompt=None, temperature: Optional[float] = None,
               top_k: Optional[int] = None, top_p: Optional[float] = None, batch_size: int = 64,
               progress: bool = False, **plan_args) -> np.ndarray:
        """n images (n, C, H, W) float32 in the data range. Plan-sampler options do not apply."""
        given = [k for k in PLAN_ONLY if plan_args.get(k) is not None]
        unknown = [k for k in plan_args if k not in PLAN_ONLY and k != "on_eval"]
        if given or unknown:
            raise EdgegenError(f"{', '.join(given + unknown)} does not apply to token models "
                               "(they take --temperature, --top-k, --top-p)")
        codes = self.sample_codes(n, seed, labels, prompt, temperature, top_k, top_p, batch_size, progress)
        return np.concatenate([self.decode(codes[i:i + batch_size]) for i in range(0, n, batch_size)])
