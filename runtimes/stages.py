"""The stages a bundle declares (manifest ``pipeline``), built by one factory per stage kind.

    condition  -> what each sample is conditioned on: nothing, a class label, a label token,
                  or a prompt (tokenizer, then optionally a text-encoder role)
    generator  -> a sampler plan on a network (executors.py), or the token loop (tokens.py)
    decoder    -> optional role turning the generator's output (codes, latents) into images

``make_condition`` and ``make_generator`` are the only places that read a stage's ``kind``:
everything else talks to the stage objects (pipeline.py). A new kind of stage is one class
here plus its entry in CONDITIONS or GENERATORS (ARCHITECTURE.md).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

from edgegen.errors import EdgegenError
from edgegen.manifest import Manifest
from edgegen.runtimes.executors import InterpreterExecutor, PlanRequest
from edgegen.runtimes.interpreter import Callback, Progress
from edgegen.runtimes.plans import Plan, plan_key
from edgegen.runtimes.samplers import compile_plan
from edgegen.runtimes.static_kv import StaticKV, wants_static
from edgegen.runtimes.tokens import TokenSampling, generate

MAX_SAMPLES = 1_000_000


def check_request(n, seed, batch_size) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise EdgegenError(f"n must be a positive integer, got {n}")
    if n > MAX_SAMPLES:
        raise EdgegenError(f"n = {n} is too large (at most {MAX_SAMPLES})")
    if not 0 <= int(seed) < 2**64:
        raise EdgegenError(f"seed must be in [0, 2**64), got {seed}")
    if batch_size <= 0:
        raise EdgegenError(f"batch size must be positive, got {batch_size}")


@dataclass
class Conditioning:
    """Per-sample conditioning, (n, ...) arrays; what a generator reads depends on its kind."""
    labels: np.ndarray  # (n,) int64: class labels (the null label, or 0, when unconditional)
    tokens: Optional[np.ndarray] = None  # (n, P) int64: the prompt tokens a token loop starts from
    # Text-encoder output (latent-stages.md): labels index rows of ``context``; label -1 is
    # ``null_context`` (the empty prompt), so CFG batches [y; -1] like a null class label.
    context: Optional[np.ndarray] = None  # (k, L, D) float32, one row per distinct prompt
    null_context: Optional[np.ndarray] = None  # (1, L, D) float32


# -- conditioning ----------------------------------------------------------------------------
class LabelCondition:
    """A class label per sample (or none for unconditional models)."""
    takes_prompt = False

    def __init__(self, manifest: Manifest, stage: dict, backend_factory=None):
        self.num_classes, self.null_label = manifest.num_classes, manifest.null_label

    def labels(self, n: int, labels=None) -> np.ndarray:
        """None: 0, 1, ..., num_classes-1 repeated (the null label if unconditional); int: all that label."""
        k = self.num_classes
        if labels is None:
            return np.arange(n, dtype=np.int64) % k if k > 0 else np.full(n, self.null_label or 0, dtype=np.int64)
        arr = np.broadcast_to(np.asarray(labels, dtype=np.int64), (n,)).copy()
        if k == 0:
            raise EdgegenError("this model is unconditional: it takes no label")
        bad = arr[(arr < 0) | (arr >= k)]
        if bad.size:
            raise EdgegenError(f"label {int(bad[0])} is out of range (this model has labels 0..{k - 1})")
        return arr

    def prepare(self, n: int, labels=None, prompt=None) -> Conditioning:
        if prompt is not None:
            raise EdgegenError("this model is class-conditional: it takes --label, not --prompt"
                               if self.num_classes else "this model takes no prompt")
        return Conditioning(self.labels(n, labels))


class LabelTokenCondition(LabelCondition):
    """A class label as the first token of the sequence (the VQ-VAE prior)."""

    def __init__(self, manifest: Manifest, stage: dict, backend_factory=None):
        super().__init__(manifest, stage)
        self.offset = int(stage["offset"])

    def prepare(self, n: int, labels=None, prompt=None) -> Conditioning:
        c = super().prepare(n, labels, prompt)
        c.tokens = (self.offset + c.labels)[:, None]
        return c


class PromptCondition(LabelCondition):
    """A text prompt per sample, tokenized (BPE, runtimes/text.py); a label picks its stored prompt."""
    takes_prompt = True

    def __init__(self, manifest: Manifest, stage: dict, backend_factory=None):
        super().__init__(manifest, stage)
        self.stage, self.root = stage, manifest.root
        self._text = None
        enc = stage.get("encoder")  # without a backend factory only the tokenizer is usable
        self.encoder = RoleStage(enc, backend_factory(enc["role"])) if enc and backend_factory else None
        self.needs_encoder = bool(enc)

    @property
    def text(self):
        if self._text is None:
            from edgegen.runtimes.text import TextEncoder
            tok = self.stage["tokenizer"]
            self._text = TextEncoder.from_file(self.root / tok["file"], tok["text_length"])
        return self._text

    def prompts(self, n: int, labels=None, prompt=None) -> list[str]:
        """The n prompts: ``prompt`` (one string, or n strings), else the stored prompt of each label."""
        if prompt is None:
            return [self.stage["label_prompts"][int(y)] for y in self.labels(n, labels)]
        if labels is not None:
            raise EdgegenError("give a prompt or labels, not both")
        if isinstance(prompt, str):
            return [prompt] * n
        prompt = list(prompt)
        if len(prompt) != n:
            raise EdgegenError(f"got {len(prompt)} prompts for {n} samples")
        return prompt

    def prepare(self, n: int, labels=None, prompt=None) -> Conditioning:
        y = self.labels(n, labels) if prompt is None else np.zeros(n, dtype=np.int64)
        prompts = self.prompts(n, labels, prompt)
        if self.needs_encoder and self.encoder is None:
            raise EdgegenError("this prompt model has a text encoder role: open it through a Pipeline")
        if self.encoder is None:
            return Conditioning(y, self.text.encode_batch(prompts))
        # The text encoder runs once per distinct prompt (its output does not depend on the
        # batch), and each sample's label indexes its prompt's row of the context table.
        distinct = list(dict.fromkeys(prompts))
        index = {p: i for i, p in enumerate(distinct)}
        tokens = self.text.encode_batch(distinct)
        null = self.stage.get("null_prompt", "")
        null_tokens = (np.full((1, self.text.text_length), self.text.pad_id, dtype=np.int64) if not null.strip()
                       else self.text.encode_batch([null]))  # "": all padding (the tokenizer refuses it)
        ctx = self.encoder(np.concatenate([tokens, null_tokens]), 64)
        return Conditioning(np.array([index[p] for p in prompts], dtype=np.int64), tokens,
                            context=np.ascontiguousarray(ctx[:-1]), null_context=np.ascontiguousarray(ctx[-1:]))


CONDITIONS = {"none": LabelCondition, "label": LabelCondition, "label_token": LabelTokenCondition,
              "prompt": PromptCondition}


def make_condition(manifest: Manifest, backend_factory=None) -> LabelCondition:
    """``backend_factory(role) -> Backend`` runs a text encoder role when the stage has one."""
    stage = manifest.stage("condition") or {"kind": "none"}
    if stage.get("kind") not in CONDITIONS:
        raise EdgegenError(f"unknown condition stage {stage.get('kind')!r} (this edgegen knows "
                           f"{', '.join(CONDITIONS)})")
    return CONDITIONS[stage["kind"]](manifest, stage, backend_factory)


# -- generators ----------------------------------------------------------------------------
def _without_preview(plan: dict) -> dict:
    """A plan's JSON as a bundle stored it before previews (plans.py "preview", "preview_ops")."""
    steps = [{k: v for k, v in st.items() if k != "preview_ops"} for st in plan["steps"]]
    return json.loads(json.dumps({**{k: v for k, v in plan.items() if k != "preview"}, "steps": steps}))


class PlanGenerator:
    """A sampler plan over the generator role, run by the backend's executor (executors.py)."""
    options = ("sampler", "steps", "guidance", "on_eval")  # plus the chosen sampler's own options
    has_plans = True  # calibration records its trajectories; bundles store its plans

    def __init__(self, manifest: Manifest, stage: dict, backend, backend_factory=None, kv_cache: str = "auto"):
        self.manifest, self.stage, self.backend = manifest, stage, backend
        self.executor = backend.plan_executor() or InterpreterExecutor(backend)

    @property
    def network_seconds(self) -> float:
        return self.executor.network_seconds

    @property
    def network_calls(self) -> int:
        return self.executor.network_calls

    def reset_counters(self) -> None:
        self.executor.network_seconds, self.executor.network_calls = 0.0, 0

    def plan(self, sampler: Optional[str] = None, steps: Optional[int] = None, **options) -> Plan:
        """The bundle's stored plan when it has this one, else compiled the same way."""
        plan = compile_plan(self.stage, sampler, steps, **options)
        stored = self.manifest.data.get("plans", {}).get(plan_key(plan.sampler, plan.params))
        if not stored:
            return plan
        if "preview" not in stored and plan.preview and _without_preview(plan.to_json()) == stored:
            return plan  # stored before previews: the same plan, plus the compiler's x0 register
        return Plan.from_json(stored)

    def describe(self, sampler=None, steps=None, guidance=None, on_eval=None, **options) -> str:
        return self.plan(sampler, steps, **options).key

    def check_options(self, options: dict) -> None:
        """Nothing to check up front: compile_plan refuses options the chosen sampler lacks."""

    @staticmethod
    def bundle_plans(stage: dict) -> dict:
        """The plans a bundle stores: the stage's ``bundle_plans`` list, else its default sampler."""
        wanted = stage.get("bundle_plans") or [{"sampler": stage.get("defaults", {}).get("sampler")}]
        plans = []
        for spec in wanted:
            spec = dict(spec)
            strength, inpaint = spec.pop("strength", None), spec.pop("inpaint", False)
            plan = compile_plan(stage, **spec)
            if strength is not None or inpaint:  # image-to-image / inpainting, stored for the native and web runtimes
                from edgegen.runtimes.plans import edit_plan
                plan = edit_plan(plan, stage, strength, inpaint=inpaint)
            plans.append(plan)
        return {p.key: p.to_json() for p in plans}

    def guidance(self, guidance: Optional[float]) -> float:
        return self.stage.get("defaults", {}).get("guidance", 1.0) if guidance is None else float(guidance)

    @property
    def shape(self) -> tuple:
        """The shape the plan runs on: the stage's ``latent_shape``, else the data shape."""
        return tuple(self.stage.get("latent_shape") or self.manifest.sample_shape)

    def generate(self, cond: Conditioning, seed: int, batch_size: int, callback: Optional[Callback],
                 sampler=None, steps=None, guidance=None, on_eval=None, inputs: Optional[dict] = None,
                 strength: Optional[float] = None, preview=None, preview_every: int = 1, **options) -> np.ndarray:
        """``inputs``: plan input registers (image-to-image ``x_init``, inpainting ``mask``), each
        (n, *shape); with them the plan is edited (plans.edit_plan) to start at ``strength``."""
        plan = self.plan(sampler, steps, **options)
        if inputs:
            from edgegen.runtimes.plans import edit_plan
            plan = edit_plan(plan, self.stage, strength, inpaint="mask" in inputs)
        whole = not isinstance(self.executor, InterpreterExecutor)
        if on_eval is not None and whole:
            raise EdgegenError(f"backend '{self.backend.name}' runs whole plans: it cannot show each network call")
        if preview is not None and whole:
            raise EdgegenError(f"backend '{self.backend.name}' runs whole plans: it has no preview "
                               "(use torch, onnxruntime, openvino or native)")
        if whole and (cond.context is not None or plan.inputs):
            what = "a text context" if cond.context is not None else "image inputs (image-to-image, inpainting)"
            raise EdgegenError(f"backend '{self.backend.name}' runs whole plans and does not take {what} yet: "
                               "use torch, onnxruntime or openvino")
        m = self.manifest
        null = -1 if cond.context is not None else m.null_label if m.num_classes > 0 else None
        req = PlanRequest(cond.labels, int(seed), batch_size, self.guidance(guidance), null, self.shape, callback,
                          on_eval, context=cond.context, null_context=cond.null_context, inputs=inputs,
                          preview=preview, preview_every=preview_every)
        return self.executor.execute(plan, req)


class TokenGenerator:
    """The token loop with a KV cache (tokens.py) over the step network: codes (n, h, w)."""
    options = ("temperature", "top_k", "top_p")
    has_plans = False

    def __init__(self, manifest: Manifest, stage: dict, backend, backend_factory=None, kv_cache: str = "auto"):
        self.executor = backend.token_executor()  # None: the Python loop over backend.run
        if self.executor is None and not backend.single_calls:
            raise EdgegenError(f"backend '{backend.name}' runs whole sampler plans; token models run on "
                               "torch, onnxruntime, openvino or native")
        self.stage, self.backend = stage, backend
        self.static = None  # the static-shape cache (static_kv.py) when the bundle has one and it is wanted
        if self.executor is None and backend_factory is not None and wants_static(stage, backend, kv_cache):
            info = stage["static_kv"]
            decode = backend_factory(info["decode"])
            prefill = backend_factory(info["prefill"]) if info["prefill"] != info["decode"] else decode
            self.static = StaticKV(info, stage["cache"], self._timed(decode.run), self._timed(prefill.run))
        self.reset_counters()

    def _timed(self, run):
        def call(inputs: dict) -> dict:
            t0 = time.perf_counter()
            out = run(inputs)
            self.network_seconds += time.perf_counter() - t0
            self.network_calls += 1
            return out
        return call

    def reset_counters(self) -> None:
        self.network_seconds, self.network_calls = 0.0, 0

    def step(self, tokens: np.ndarray, past_kv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t0 = time.perf_counter()
        out = self.backend.run({"tokens": tokens, "past_kv": past_kv})
        self.network_seconds += time.perf_counter() - t0
        self.network_calls += 1
        return out["logits"], out["present_kv"]

    def empty_past(self, batch: int) -> np.ndarray:
        c = self.stage["cache"]
        return np.zeros((batch, c["layers"], 2, c["heads"], 0, c["head_dim"]), dtype=np.float32)

    def token_sampling(self, temperature=None, top_k=None, top_p=None) -> TokenSampling:
        d = self.stage.get("defaults", {})
        if top_k is None:
            top_k = d.get("top_k") or None  # 0 in the bundle = off
        return TokenSampling(d.get("temperature", 1.0) if temperature is None else temperature, top_k,
                             d.get("top_p", 1.0) if top_p is None else top_p).check()

    def check_options(self, options: dict) -> None:
        wrong = [k for k in options if k not in self.options]
        if wrong:
            raise EdgegenError(f"{', '.join(wrong)} does not apply to token models "
                               "(they take --temperature, --top-k, --top-p)")

    def plan(self, *args, **kw):
        raise EdgegenError("this model samples with the token loop: it has no sampler plan")

    @staticmethod
    def bundle_plans(stage: dict) -> dict:
        return {}

    def describe(self, **options) -> str:
        self.check_options(options)
        c = self.token_sampling(**options)
        return f"tokens(temperature={c.temperature}, top_k={c.top_k}, top_p={c.top_p})"

    def generate(self, cond: Conditioning, seed: int, batch_size: int, callback: Optional[Callback],
                 temperature=None, top_k=None, top_p=None) -> np.ndarray:
        cfg = self.token_sampling(temperature, top_k, top_p)
        s, n = self.stage, len(cond.labels)
        n_tok, (h, w) = s["image_tokens"], s["grid"]
        if self.executor is not None:  # the whole loop in the executor (the native library)
            codes, stats = self.executor.generate_tokens(cond, int(seed), batch_size, cfg, callback)
            self.network_seconds += stats["network_seconds"]
            self.network_calls += stats["network_calls"]
            return codes.reshape(n, h, w)
        codes = np.zeros((n, n_tok), dtype=np.int64)
        progress = Progress(-(-n // batch_size) * n_tok, callback)
        step, empty = (self.static, self.static.empty) if self.static else (self.step, self.empty_past)
        for start in range(0, n, batch_size):
            b = min(batch_size, n - start)
            codes[start:start + b] = generate(step, cond.tokens[start:start + b], n_tok, empty(b), cfg,
                                              int(seed), first_sample=start, token_offset=s["code_offset"],
                                              on_token=lambda i: progress.step())
        return codes.reshape(n, h, w)


GENERATORS = {"plan": PlanGenerator, "tokens": TokenGenerator}


def generator_class(manifest: Manifest) -> type:
    """The stage class of the bundle's generator (the one place its ``kind`` is read)."""
    kind = manifest.generator.get("kind")
    if kind not in GENERATORS:
        raise EdgegenError(f"unknown generator stage {kind!r} (this edgegen knows {', '.join(GENERATORS)})")
    return GENERATORS[kind]


def make_generator(manifest: Manifest, backend, backend_factory=None, kv_cache: str = "auto"):
    """``backend_factory(role) -> Backend`` opens the other roles a generator may run (the static
    KV-cache roles of a token model); ``kv_cache``: static_kv.MODES (token models)."""
    return generator_class(manifest)(manifest, manifest.generator, backend, backend_factory, kv_cache)


# -- decoder -----------------------------------------------------------------------------------
class RoleStage:
    """A role run once on the previous stage's output (a decoder: codes or latents -> images; an
    encoder: images -> latents; a text encoder: tokens -> context).

    A stage with ``scale`` (latent models, latent-stages.md) maps between the role's latents and
    the plan's unit-variance latents: a decoder gets z / scale, an encoder returns z * scale."""

    def __init__(self, stage: dict, backend, direction: str = "decode"):
        self.stage, self.backend, self.direction = stage, backend, direction
        self.network_seconds = 0.0

    def __call__(self, x: np.ndarray, batch_size: int) -> np.ndarray:
        t0 = time.perf_counter()
        inp, out = self.stage.get("input", "codes"), self.stage.get("output", "x")
        scale = self.stage.get("scale")
        if scale is not None and self.direction == "decode":
            x = x * np.float32(1.0 / scale)
        y = np.concatenate([self.backend.run({inp: x[i:i + batch_size]})[out] for i in range(0, len(x), batch_size)])
        if scale is not None and self.direction == "encode":
            y = y * np.float32(scale)
        self.network_seconds += time.perf_counter() - t0
        return y
