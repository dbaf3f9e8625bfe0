"""One Pipeline for every bundle: condition -> generator -> optional decoder (stages.py).

    from edgegen.runtimes.pipeline import open_pipeline
    pipe = open_pipeline("bundles/ddpm-small", backend="onnxruntime")
    images = pipe.sample(16, seed=0, labels=3)                       # (16, 1, 16, 16) in [-1, 1]
    images = open_pipeline("bundles/dalle-small").sample(4, prompt="a handwritten seven", top_k=20)

Latent models (latent-stages.md) run the text encoder in the condition stage, the plan on latents
and the decoder on z / scale. Image-to-image (``init_image=``, ``strength=``) and inpainting
(``init_image=``, ``mask=``) are plan features (plans.edit_plan) that work for pixel and latent
plans alike: the init image (encoded and scaled for latent models) and the mask fill plan inputs.

``callback(done, total)`` is called after every network step (plan steps, tokens); returning
False stops the run with ``edgegen.errors.Cancelled``. ``preview(done, total, images)`` is called
after every ``preview_every``-th plan step with the batch's current x0 prediction (the register the
plan compiler names, plans.py "preview"), decoded when the bundle has a decoder; False cancels too.
Not thread-safe: one per thread.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Union

import numpy as np

from edgegen.errors import EdgegenError
from edgegen.manifest import Manifest, read_manifest
from edgegen.runtimes.backends import create_backend
from edgegen.runtimes.backends.base import Backend
from edgegen.runtimes.interpreter import Callback, Preview
from edgegen.runtimes.plans import edit_strength
from edgegen.runtimes.stages import RoleStage, check_request, make_condition, make_generator


def open_manifest(path: Union[str, Path], verify: bool = True) -> Manifest:
    """A bundle folder (manifest.json). Training runs are opened by edgegen.train.runs.open_source."""
    path = Path(path)
    if not path.exists():
        raise EdgegenError(f"bundle not found: {path}")
    return read_manifest(path, verify=verify)


def default_backend(manifest: Manifest) -> str:
    """onnxruntime for bundles; torch for a training run (it has torch weights only)."""
    return "onnxruntime" if "onnx" in manifest.formats(manifest.generator["role"]) else "torch"


class Pipeline:
    """Sampling for one bundle on one backend.

    ``backend``: a backend name for every role, or a Backend for the generator role (roles
    without one get a backend of the same name), or ``{role: Backend}``."""

    def __init__(self, manifest: Manifest, backend: Union[str, Backend, dict] = "onnxruntime",
                 precision: str = "fp32", **backend_opts):
        self.manifest = manifest
        kv_cache = backend_opts.pop("kv_cache", "auto")  # token models: static_kv.MODES
        given = backend if isinstance(backend, dict) else {manifest.generator["role"]: backend} \
            if isinstance(backend, Backend) else {}
        name = backend if isinstance(backend, str) else next(iter(given.values())).name

        gen_role = manifest.generator["role"]

        def role_precision(role: str) -> str:
            # ``precision`` names the generator's files (calibration quantizes the generator only);
            # another role runs at it where the bundle has that precision, else at fp32
            has = any(precision in per for per in manifest.formats(role).values())
            return precision if role == gen_role or has else "fp32"

        def get(role: str) -> Backend:
            return given.get(role) or create_backend(name, manifest, role, role_precision(role), **backend_opts)

        self._get = get
        self.condition = make_condition(manifest, get)
        self.backend = get(manifest.generator["role"])
        self.generator = make_generator(manifest, self.backend, get, kv_cache)
        dec = manifest.stage("decoder")
        self.decoder = RoleStage(dec, get(dec["role"])) if dec else None
        self._encoder = None  # opened on first use (image-to-image on a latent model)

    # -- what callers ask about ---------------------------------------------------------------
    @property
    def sampling(self) -> dict:
        return self.manifest.generator

    @property
    def eval_seconds(self) -> float:
        """Seconds inside network calls (generator and decoder), for profiling."""
        return self.generator.network_seconds + (self.decoder.network_seconds if self.decoder else 0.0)

    @property
    def eval_calls(self) -> int:
        return self.generator.network_calls

    def reset_counters(self) -> None:
        self.generator.reset_counters()
        if self.decoder:
            self.decoder.network_seconds = 0.0

    def labels(self, n: int, labels=None) -> np.ndarray:
        return self.condition.labels(n, labels)

    def describe(self, **options) -> str:
        """The generator's settings for these options: a plan key, or the token sampling."""
        return self.generator.describe(**{k: v for k, v in options.items() if v is not None})

    def plan(self, sampler: Optional[str] = None, steps: Optional[int] = None, **options):
        """The plan this pipeline would run (plan generators only)."""
        return self.generator.plan(sampler, steps, **{k: v for k, v in options.items() if v is not None})

    # -- sampling -------------------------------------------------------------------------------
    def sample(self, n: int, seed: int = 0, labels=None, prompt=None, batch_size: int = 64,
               progress: bool = False, callback: Optional[Callback] = None, init_image=None, mask=None,
               strength: Optional[float] = None, preview: Optional[Preview] = None, preview_every: int = 1,
               **options) -> np.ndarray:
        """n samples (n, *sample shape) float32 in the data range; same seed -> same samples.

        ``options``: the generator's (plans: sampler, steps, guidance and the sampler's own options
        such as eta; token loops: temperature, top_k, top_p); None means the bundle's default.
        ``init_image`` (C, H, W), or one per sample (n, C, H, W), in the data range: image-to-image
        from it at ``strength`` in (0, 1] (default 0.6); with ``mask`` (H, W) of 0/1 (1 = generate):
        inpainting (default: all steps from pure noise; a strength starts from the noised image), the
        unmasked pixels of every sample equal the image's.
        ``preview(done, total, images)``: every ``preview_every`` plan steps, the running batch's x0
        prediction (b, *sample shape), decoded like the output; returning False cancels."""
        options = {k: v for k, v in options.items() if v is not None}
        if preview is not None:
            if not getattr(self.generator, "has_plans", False):
                raise EdgegenError("no preview for token models (a preview shows a diffusion plan's x0 prediction)")
            if isinstance(preview_every, bool) or not isinstance(preview_every, int) or preview_every < 1:
                raise EdgegenError(f"preview_every must be a positive integer, got {preview_every!r}")
        check_request(n, seed, batch_size)
        check_output_size(n, self.manifest.sample_shape)
        self.generator.check_options(options)
        whole = self.backend.pipeline_executor()  # the native library: every stage in one call
        edit = None if whole else self._edit_inputs(n, init_image, mask, strength, batch_size)
        edit_kw = {} if edit is None else {"inputs": edit[0], "strength": edit[1]}
        cond = None if whole else self.condition.prepare(n, labels, prompt)
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(desc=f"{self.describe(**options)} on {self.backend.name}", unit="step", dynamic_ncols=True)
            callback = bar_callback(bar, callback)
        try:
            if whole is not None:
                if preview is not None:
                    options = {**options, "preview": preview, "preview_every": preview_every}
                return whole.sample_pipeline(self, n, seed, labels, prompt, batch_size, callback, init_image, mask,
                                             strength, options)
            if preview is not None:
                edit_kw.update(preview=self._decoded_preview(preview, batch_size), preview_every=preview_every)
            out = self.generator.generate(cond, seed, batch_size, callback, **options, **edit_kw)
        finally:
            if bar is not None:
                bar.close()
        out = self.decoder(out, batch_size) if self.decoder else out
        if edit is not None and edit[2] is not None:  # latent inpainting: paste the known pixels back
            keep = edit[2]
            out = keep * out + (np.float32(1.0) - keep) * edit[3]
        return out

    def _decoded_preview(self, preview: "Preview", batch_size: int):
        """The interpreter's hook (done, total, x0) -> the caller's preview on the decoded x0."""
        def hook(done: int, total: int, x0: np.ndarray):
            images = self.decoder(x0, batch_size) if self.decoder else np.array(x0, dtype=np.float32)
            return preview(done, total, images)
        return hook

    # -- image-to-image, inpainting ------------------------------------------------------------
    def _edit_inputs(self, n: int, init_image, mask, strength, batch_size: int):
        """(plan inputs, strength, pixel mask or None, image) for an edit, None without an image."""
        if init_image is None:
            if mask is not None or strength is not None:
                raise EdgegenError("--mask and --strength need --init-image")
            return None
        if not getattr(self.generator, "has_plans", False):
            raise EdgegenError("image-to-image and inpainting need a diffusion model (this one samples tokens)")
        shape = self.manifest.sample_shape
        img = np.asarray(init_image, dtype=np.float32)
        if img.shape != (n, *shape) and img.shape != shape:
            raise EdgegenError(f"the init image is {_dims(img.shape)}, this model takes {_dims(shape)} "
                               "(channels x height x width)")
        lo, hi = self.manifest.data["data"].get("range", [-1.0, 1.0])
        if not np.all(np.isfinite(img)) or img.min() < lo or img.max() > hi:
            raise EdgegenError(f"the init image has values outside the data range [{lo}, {hi}]")
        strength = edit_strength(strength, inpaint=mask is not None)
        enc = self.manifest.stage("encoder")
        latent = tuple(self.sampling.get("latent_shape") or shape)
        if latent != shape:
            if not enc or "scale" not in enc:
                raise EdgegenError("this latent model has no image encoder stage: it cannot start from an image")
            if self._encoder is None:
                self._encoder = RoleStage(enc, self._get(enc["role"]), direction="encode")
            x_init = self._encoder(img.reshape(-1, *shape), batch_size)
        else:
            x_init = img
        inputs = {"x_init": np.ascontiguousarray(np.broadcast_to(x_init.reshape(-1, *latent), (n, *latent)))}
        pixel_mask = None
        if mask is not None:
            m = np.asarray(mask, dtype=np.float32)
            if m.ndim == 3 and m.shape[0] == 1:
                m = m[0]
            if m.shape != shape[1:]:
                raise EdgegenError(f"the mask is {_dims(m.shape)}, it must be {_dims(shape[1:])} like the image")
            if not np.all((m == 0) | (m == 1)):
                raise EdgegenError("the mask must be binary: 1 (white) where to generate, 0 (black) where to keep")
            if latent != shape:  # a latent cell is generated when any of its pixels is
                fy, fx = shape[1] // latent[1], shape[2] // latent[2]
                lm = m.reshape(latent[1], fy, latent[2], fx).max(axis=(1, 3))
                pixel_mask = np.broadcast_to(m, shape).astype(np.float32)
            else:
                lm = m
            inputs["mask"] = np.ascontiguousarray(np.broadcast_to(lm, (n, *latent)), dtype=np.float32)
        return inputs, strength, pixel_mask, img


# n x sample size above this is refused before anything is allocated (issue 20): the native
# library's bound (MAX_OUTPUT_FLOATS in runtimes/native/src/c_api.cpp, edgegen_sample_count)
MAX_OUTPUT_FLOATS = 1 << 32  # 16 GiB of float32


def check_output_size(n: int, shape) -> None:
    elems = math.prod(int(d) for d in shape)
    if elems and int(n) > MAX_OUTPUT_FLOATS // elems:
        raise EdgegenError(f"{n} samples of {elems} values are more than the 16 GiB one call may return "
                           "(ask for fewer)")


def _dims(shape) -> str:
    return "x".join(str(int(d)) for d in shape)


def bar_callback(bar, callback: Optional[Callback] = None, close_at_end: bool = False) -> Callback:
    """A step callback that moves a tqdm ``bar`` (and then calls ``callback``, whose answer counts)."""
    def cb(done: int, total: int):
        bar.total = total
        bar.update(done - bar.n)
        if close_at_end and done >= total:
            bar.close()
        return None if callback is None else callback(done, total)
    return cb


def open_pipeline(path: Union[str, Path], backend: str = "onnxruntime", precision: str = "fp32",
                  **backend_opts) -> Pipeline:
    return Pipeline(open_manifest(path), backend, precision, **backend_opts)
