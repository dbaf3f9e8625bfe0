"""The native C++ runtime (libedgegen, runtimes/native/) driven through ctypes.

Unlike the other adapters it runs whole plans itself - that is its point: it is its own plan
executor (executors.py): the Pipeline hands it the plan and it returns the samples plus its own
timing of the network calls. For token models (ABI 3) it is the token executor too: the whole
token loop (prefill, KV-cache decode steps, sampling from the Philox stream) runs in C++, and on
the decoder role it runs the bundle's decoder (``edgegen_decode``). Prompt text is tokenized in
C++ (ABI 5) when the bundle has a tokenizer model (export/tokenizer_export.py), else in Python. The request's ``callback(done, total)`` is called from inside the
C++ loop after every network step (a ctypes progress callback, ABI 2); returning False cancels
the call (EDGEGEN_ERR_CANCELLED -> ``edgegen.errors.Cancelled``). The library is found at $EDGEGEN_NATIVE_LIB, else at
``build/native/libedgegen.so`` in the source tree (``make native`` builds it).

For plan models it is also the pipeline executor (``pipeline_executor``, ABI 4): ``Pipeline.sample``
hands it the whole request and one ``edgegen_sample`` call runs every stage in C++: the text encoder
on the prompt's token ids (latent text-to-image; the context table and classifier-free guidance as
executors.py), the image encoder and the plan's input registers (image-to-image, inpainting), the
plan, the decoder, and pasting the unmasked pixels back. Python only tokenizes, picks the plan
(compiled or stored, edited by plans.edit_plan with the Pipeline's defaults) and passes it as JSON.
The library runs the networks on OpenVINO (the IR), or on ExecuTorch (the ``.pte`` programs) for a
bundle that has only those (default_engine); ``engine=`` picks a library backend explicitly.
"""
from __future__ import annotations

import ctypes
import json
import math
import os
from pathlib import Path
from typing import Optional

import numpy as np

from edgegen.errors import Cancelled, EdgegenError
from edgegen.runtimes.backends.base import Backend

LIB_ENV = "EDGEGEN_NATIVE_LIB"
DEFAULT_LIB = Path(__file__).resolve().parents[2] / "build" / "native" / "libedgegen.so"
ABI_VERSION = 5
OK = 0
CANCELLED = 9  # EDGEGEN_ERR_CANCELLED
# edgegen_progress_fn: int (*)(uint64_t done, uint64_t total, void *user); non-zero cancels
ProgressFn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_void_p)
# edgegen_preview_fn (ABI 5): int (*)(done, total, const float *image, n, c, h, w, void *user)
PreviewFn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_uint64, ctypes.c_uint64, ctypes.POINTER(ctypes.c_float),
                             ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_void_p)


class LoadParams(ctypes.Structure):  # mirrors edgegen_load_params (edgegen.h)
    _fields_ = [("backend", ctypes.c_char_p), ("device", ctypes.c_char_p), ("precision", ctypes.c_char_p),
                ("verify_sha256", ctypes.c_int), ("cache_dir", ctypes.c_char_p),
                ("calibration_cache", ctypes.c_char_p), ("max_batch", ctypes.c_int), ("num_threads", ctypes.c_int),
                ("trust_code", ctypes.c_int),
                # ABI 5: per-stage devices (NULL = device)
                ("text_encoder_device", ctypes.c_char_p), ("denoiser_device", ctypes.c_char_p),
                ("decoder_device", ctypes.c_char_p)]


class SampleParams(ctypes.Structure):  # mirrors edgegen_sample_params
    _fields_ = [("sampler", ctypes.c_char_p), ("steps", ctypes.c_int), ("eta", ctypes.c_double),
                ("plan_json", ctypes.c_char_p), ("n", ctypes.c_uint32), ("seed", ctypes.c_uint64),
                ("labels", ctypes.POINTER(ctypes.c_int64)), ("label", ctypes.c_int64),
                ("guidance", ctypes.c_double), ("batch_size", ctypes.c_uint32),
                ("progress", ProgressFn), ("progress_user", ctypes.c_void_p),
                # ABI 3: token models
                ("temperature", ctypes.c_double), ("top_k", ctypes.c_int64), ("top_p", ctypes.c_double),
                ("prompt_tokens", ctypes.POINTER(ctypes.c_int64)), ("prompt_len", ctypes.c_size_t),
                ("prompt_count", ctypes.c_uint32), ("codes_out", ctypes.POINTER(ctypes.c_int64)),
                ("codes_count", ctypes.c_size_t),
                # ABI 4: image-to-image and inpainting
                ("init_image", ctypes.POINTER(ctypes.c_float)), ("image_count", ctypes.c_uint32),
                ("image_channels", ctypes.c_uint32), ("image_height", ctypes.c_uint32), ("image_width", ctypes.c_uint32),
                ("mask", ctypes.POINTER(ctypes.c_float)), ("mask_height", ctypes.c_uint32),
                ("mask_width", ctypes.c_uint32), ("strength", ctypes.c_double),
                # ABI 5: previews
                ("preview", PreviewFn), ("preview_user", ctypes.c_void_p), ("preview_every", ctypes.c_uint32),
                # ABI 5: prompt text (tokenized in C++)
                ("prompts", ctypes.POINTER(ctypes.c_char_p))]


class StageInfo(ctypes.Structure):  # mirrors edgegen_stage_info (ABI 3)
    _fields_ = [("condition", ctypes.c_char * 16), ("generator", ctypes.c_char * 16), ("has_decoder", ctypes.c_int),
                ("image_tokens", ctypes.c_int64), ("grid", ctypes.c_int64 * 2), ("prompt_length", ctypes.c_int64),
                ("text_vocab", ctypes.c_int64), ("pad_id", ctypes.c_int64),
                ("has_text_encoder", ctypes.c_int), ("takes_image", ctypes.c_int), ("has_image_encoder", ctypes.c_int),
                # ABI 5: each stage's device
                ("text_encoder_device", ctypes.c_char * 32), ("denoiser_device", ctypes.c_char * 32),
                ("decoder_device", ctypes.c_char * 32), ("has_tokenizer", ctypes.c_int)]


class Stats(ctypes.Structure):  # mirrors edgegen_stats
    _fields_ = [("total_seconds", ctypes.c_double), ("network_seconds", ctypes.c_double),
                ("network_calls", ctypes.c_uint64)]


STAGE_DEVICES = ("text_encoder_device", "denoiser_device", "decoder_device")  # NativeBackend options (ABI 5)
STRUCTS = {"edgegen_load_params": LoadParams, "edgegen_sample_params": SampleParams, "edgegen_stats": Stats,
           "edgegen_stage_info": StageInfo}
I64P = ctypes.POINTER(ctypes.c_int64)
F32P = ctypes.POINTER(ctypes.c_float)
_lib: Optional[ctypes.CDLL] = None


def library_path() -> Path:
    return Path(os.environ.get(LIB_ENV) or DEFAULT_LIB)


def _load() -> ctypes.CDLL:
    """Open libedgegen once, declare the functions used, check the ABI matches these mirrors."""
    global _lib
    if _lib is not None:
        return _lib
    path = library_path()
    if not path.is_file():
        raise EdgegenError(f"libedgegen is not built (no {path}): run `make native`, or set {LIB_ENV}")
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as e:
        raise EdgegenError(f"cannot load {path}: {e}") from None
    lib.edgegen_last_error.restype = ctypes.c_char_p
    lib.edgegen_status_name.restype = ctypes.c_char_p
    lib.edgegen_struct_size.restype = ctypes.c_size_t
    lib.edgegen_struct_size.argtypes = [ctypes.c_char_p]
    lib.edgegen_bundle_load.argtypes = [ctypes.c_char_p, ctypes.POINTER(LoadParams), ctypes.POINTER(ctypes.c_void_p)]
    lib.edgegen_bundle_free.argtypes = [ctypes.c_void_p]
    lib.edgegen_load_params_init.argtypes = [ctypes.POINTER(LoadParams)]
    lib.edgegen_sample_params_init.argtypes = [ctypes.POINTER(SampleParams)]
    lib.edgegen_sample_count.argtypes = [ctypes.c_void_p, ctypes.POINTER(SampleParams), ctypes.POINTER(ctypes.c_size_t)]
    lib.edgegen_sample.argtypes = [ctypes.c_void_p, ctypes.POINTER(SampleParams), ctypes.POINTER(ctypes.c_float),
                                   ctypes.c_size_t, ctypes.POINTER(Stats)]
    lib.edgegen_cancel.argtypes = [ctypes.c_void_p]
    lib.edgegen_bundle_stages.argtypes = [ctypes.c_void_p, ctypes.POINTER(StageInfo)]
    lib.edgegen_decode.argtypes = [ctypes.c_void_p, I64P, ctypes.c_size_t, ctypes.c_uint32, ctypes.c_uint32, F32P,
                                   ctypes.c_size_t]
    try:
        lib.edgegen_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, I64P, ctypes.c_size_t,
                                         ctypes.POINTER(ctypes.c_size_t)]
    except AttributeError:  # a library built before ABI 5's tokenizer
        raise EdgegenError(f"{path} has no edgegen_tokenize: it is older than this binding (rebuild: make native)") from None
    lib.edgegen_next_tokens.argtypes = [F32P, ctypes.c_uint32, ctypes.c_size_t, ctypes.POINTER(ctypes.c_double),
                                        ctypes.c_double, ctypes.c_int64, ctypes.c_double, I64P]
    if lib.edgegen_abi_version() != ABI_VERSION:
        raise EdgegenError(f"{path} has ABI version {lib.edgegen_abi_version()}, this binding expects {ABI_VERSION}")
    for name, cls in STRUCTS.items():
        if lib.edgegen_struct_size(name.encode()) != ctypes.sizeof(cls):
            raise EdgegenError(f"{path}: struct {name} does not match the ctypes mirror (rebuild: make native)")
    _lib = lib
    return lib


def next_tokens(logits: np.ndarray, u: np.ndarray, temperature: float, top_k: int, top_p: float) -> np.ndarray:
    """The library's token sampling (edgegen_next_tokens): logits (B, V), u (B,) -> tokens (B,)."""
    lib = _load()
    z = np.ascontiguousarray(logits, dtype=np.float32)
    uu = np.ascontiguousarray(u, dtype=np.float64)
    out = np.empty(len(z), dtype=np.int64)
    _check(lib.edgegen_next_tokens(z.ctypes.data_as(F32P), len(z), z.shape[1],
                                   uu.ctypes.data_as(ctypes.POINTER(ctypes.c_double)), float(temperature),
                                   int(top_k), float(top_p), out.ctypes.data_as(I64P)))
    return out


def library_backends() -> list[str]:
    """The network backends the library was built with (edgegen_backends)."""
    lib = _load()
    lib.edgegen_backends.restype = ctypes.c_char_p
    return lib.edgegen_backends().decode().split(",")


def default_engine(manifest, precision: str = "fp32") -> str:
    """The library backend for a bundle: openvino when its generator has the IR, else executorch when
    it has only ExecuTorch programs (``edgegen export --format executorch``) and the library has it."""
    files = manifest.formats(manifest.generator.get("role"))
    if precision not in files.get("openvino", {}) and precision in files.get("executorch", {}) \
            and "executorch" in library_backends():
        return "executorch"
    return "openvino"


def _check(status: int) -> None:
    if status != OK:
        lib = _load()
        raise EdgegenError(lib.edgegen_last_error().decode(errors="replace"))


class NativeBackend(Backend):
    name = "native"
    single_calls = False  # whole plans only
    format = "openvino"  # the IR it runs through its OpenVINO backend (TensorRT: the ONNX)

    def __init__(self, manifest, role, precision="fp32", device: str = "CPU", engine: Optional[str] = None,
                 cache_dir: Optional[str] = None, threads: int = 0, **opts):
        # ABI 5: per-stage devices (None = device): the text encoder, the generator, the decoder/image encoder
        self._stage_devices = tuple(opts.pop(k, None) for k in STAGE_DEVICES)
        super().__init__(manifest, role, precision, **opts)
        lib = _load()
        self._lib, self._handle = lib, None
        self.network_seconds, self.network_calls = 0.0, 0  # as timed inside the library (executor protocol)
        decoder = (manifest.stage("decoder") or {}).get("role")
        # the roles around the generator (text encoder, image encoder, decoder) run inside the
        # generator's edgegen_sample call; a token model's decoder also runs alone (edgegen_decode)
        stage_roles = {decoder, (manifest.stage("encoder") or {}).get("role"),
                       ((manifest.stage("condition") or {}).get("encoder") or {}).get("role")} - {None}
        if role not in {manifest.generator.get("role"), *stage_roles}:
            raise EdgegenError(f"the native runtime runs the bundle's stages (roles "
                               f"{', '.join(sorted({manifest.generator.get('role'), *stage_roles}))}), not '{role}'")
        self.is_decoder = role != manifest.generator.get("role")  # any stage role besides the generator
        self._load_args = (engine or default_engine(manifest, precision), device, precision, cache_dir, threads, opts)
        if not self.is_decoder:  # stage roles load the bundle when first run alone
            self._open()

    def _open(self) -> None:
        lib = self._lib
        engine, device, precision, cache_dir, threads, opts = self._load_args
        lp = LoadParams()
        lib.edgegen_load_params_init(ctypes.byref(lp))
        self._keep = [s.encode() for s in (engine, device, precision, cache_dir or "")]
        lp.backend, lp.device, lp.precision = self._keep[:3]
        lp.cache_dir = self._keep[3] or None
        lp.verify_sha256 = 0  # open_manifest already checked every sha256 of this bundle
        lp.num_threads = int(threads)  # OpenVINO INFERENCE_NUM_THREADS, like the openvino backend's option
        lp.trust_code = int(bool(opts.get("trust_code")))  # code-bearing formats (SECURITY.md)
        devices = [None if d is None else str(d).encode() for d in self._stage_devices]
        self._keep += [d for d in devices if d]
        lp.text_encoder_device, lp.denoiser_device, lp.decoder_device = devices
        handle = ctypes.c_void_p()
        _check(lib.edgegen_bundle_load(str(self.manifest.root).encode(), ctypes.byref(lp), ctypes.byref(handle)))
        self._handle = handle

    @classmethod
    def unavailable(cls) -> Optional[str]:
        try:
            _load()
        except EdgegenError as e:
            return str(e)
        return None

    def run(self, inputs):
        """Only on a token model's decoder role: the bundle's decoder on codes (edgegen_decode)."""
        stage = self.manifest.stage("decoder") or {}
        if not self.is_decoder:
            raise EdgegenError("the native backend runs whole plans (Pipeline.sample), not single network calls")
        if self.role_name != stage.get("role") or self.manifest.generator.get("kind") != "tokens":
            raise EdgegenError(f"the native runtime runs role '{self.role_name}' inside its pipeline call "
                               "(Pipeline.sample), not alone")
        if self._handle is None:
            self._open()
        codes = np.ascontiguousarray(inputs[stage.get("input", "codes")], dtype=np.int64)
        n = len(codes)
        per_out = int(np.prod(self.spec.outputs[0].shape[1:]))
        out = np.empty(n * per_out, dtype=np.float32)
        _check(self._lib.edgegen_decode(self._handle, codes.ctypes.data_as(I64P), codes.size, n, n,
                                        out.ctypes.data_as(F32P), out.size))
        return {stage.get("output", "x"): out.reshape(n, *self.spec.outputs[0].shape[1:])}

    def plan_executor(self):
        return None if self.is_decoder else self

    def pipeline_executor(self):
        """Plan models, and prompt token models whose bundle has a tokenizer model (ABI 5): every
        stage in one native call (``sample_pipeline``)."""
        if self.is_decoder:
            return None
        kind = self.manifest.generator.get("kind")
        return self if kind == "plan" or (kind == "tokens" and self.has_tokenizer) else None

    @property
    def has_tokenizer(self) -> bool:
        """The library tokenizes prompt text for this bundle (edgegen_stage_info.has_tokenizer)."""
        if not hasattr(self, "_has_tokenizer"):
            info = StageInfo()
            _check(self._lib.edgegen_bundle_stages(self._handle, ctypes.byref(info)))
            self._has_tokenizer = bool(info.has_tokenizer)
        return self._has_tokenizer

    def tokenize(self, text: str) -> tuple[np.ndarray, int]:
        """edgegen_tokenize: one prompt -> (text_length,) int64 ids right-padded, and the ids before the padding."""
        tok = self.manifest.stage("condition")["tokenizer"]
        length = int(tok["text_length"])
        if _c_text(text) is None:  # not a C string: Python's TextEncoder refuses it in its words
            from edgegen.runtimes.text import TextEncoder
            TextEncoder.from_file(self.manifest.root / tok["file"], length).encode(text)
        ids, used = np.empty(length, dtype=np.int64), ctypes.c_size_t()
        _check(self._lib.edgegen_tokenize(self._handle, text.encode("utf-8"), ids.ctypes.data_as(I64P), length,
                                          ctypes.byref(used)))
        return ids, int(used.value)

    def _prompt_params(self, sp: SampleParams, cond, n: int, labels, prompt, keep: list) -> None:
        """The n prompts (or the stored prompts of the labels) as text for the C++ tokenizer (ABI 5),
        or as Python's token ids when the bundle has no tokenizer model. A prompt C cannot hold (NUL,
        lone surrogates, not a string) goes to Python's TextEncoder, which refuses it in its words."""
        prompts = cond.prompts(n, labels, prompt)
        if self.has_tokenizer:
            texts = [t for t in map(_c_text, prompts) if t is not None]
            if len(texts) == n:
                arr = (ctypes.c_char_p * n)(*texts)
                keep.append(arr)
                sp.prompts = ctypes.cast(arr, ctypes.POINTER(ctypes.c_char_p))
                sp.prompt_count = n
                return
        tokens = np.ascontiguousarray(cond.text.encode_batch(prompts), dtype=np.int64)
        keep.append(tokens)
        sp.prompt_tokens, sp.prompt_len, sp.prompt_count = tokens.ctypes.data_as(I64P), tokens.shape[1], n

    def sample_pipeline(self, pipe, n: int, seed: int, labels, prompt, batch_size: int, callback,
                        init_image, mask, strength, options: dict) -> np.ndarray:
        """The pipeline executor protocol (pipeline.py Pipeline.sample): condition, image inputs,
        plan and decoder in one edgegen_sample. Python tokenizes the prompts and picks the plan (with
        the Pipeline's image-to-image defaults, plans.edit_strength); the library checks
        the images and runs the rest."""
        gen = pipe.generator
        if self.manifest.generator.get("kind") == "tokens":
            return self._sample_tokens(pipe, n, seed, labels, prompt, batch_size, callback, init_image, mask,
                                       strength, options)
        if options.get("on_eval") is not None:
            raise EdgegenError(f"backend '{self.name}' runs whole plans: it cannot show each network call")
        opts = {k: v for k, v in options.items() if k not in ("on_eval", "guidance", "preview", "preview_every")}
        plan = gen.plan(opts.pop("sampler", None), opts.pop("steps", None), **opts)
        keep: list = []
        sp = self._params(n, seed, batch_size, callback)
        sp.guidance = float(gen.guidance(options.get("guidance")))
        self._preview_params(sp, options.get("preview"), options.get("preview_every", 1))
        cond = pipe.condition
        if getattr(cond, "needs_encoder", False):  # latent text-to-image: the C++ tokenizer and text encoder
            self._prompt_params(sp, cond, n, labels, prompt, keep)
        else:
            y = np.ascontiguousarray(cond.prepare(n, labels, prompt).labels, dtype=np.int64)
            keep.append(y)
            if self.manifest.num_classes > 0:  # unconditional models take the library's default (null) labels
                sp.labels = y.ctypes.data_as(I64P)
        if init_image is None and (mask is not None or strength is not None):
            raise EdgegenError("--mask and --strength need --init-image")
        if init_image is not None:
            from edgegen.runtimes.plans import edit_plan, edit_strength
            plan = edit_plan(plan, gen.stage, edit_strength(strength, mask is not None), inpaint=mask is not None)
            self._image_params(sp, init_image, mask, keep)
        text = json.dumps(plan.to_json()).encode()
        keep.append(text)
        sp.plan_json = text
        count = ctypes.c_size_t()
        _check(self._lib.edgegen_sample_count(self._handle, ctypes.byref(sp), ctypes.byref(count)))
        out = np.empty(count.value, dtype=np.float32)
        stats = self._call(sp, out, out.size, callback)
        self.network_seconds += stats["network_seconds"]
        self.network_calls += stats["network_calls"]
        return out.reshape(n, *self.manifest.sample_shape)

    def _sample_tokens(self, pipe, n: int, seed: int, labels, prompt, batch_size: int, callback, init_image, mask,
                       strength, options: dict) -> np.ndarray:
        """A prompt token model in one edgegen_sample (ABI 5): the prompt text tokenized in C++, the
        token loop, the decoder; the same images as the token executor + decoder path."""
        if init_image is not None or mask is not None or strength is not None:
            raise EdgegenError("image inputs (--init-image, --mask, --strength) are for diffusion plan models")
        cfg = pipe.generator.token_sampling(**{k: options[k] for k in ("temperature", "top_k", "top_p") if k in options})
        sp = self._params(n, seed, batch_size, callback)
        sp.temperature, sp.top_p, sp.top_k = float(cfg.temperature), float(cfg.top_p), int(cfg.top_k or 0)
        keep: list = []
        self._prompt_params(sp, pipe.condition, n, labels, prompt, keep)
        count = ctypes.c_size_t()
        _check(self._lib.edgegen_sample_count(self._handle, ctypes.byref(sp), ctypes.byref(count)))
        out = np.empty(count.value, dtype=np.float32)
        stats = self._call(sp, out, out.size, callback)
        for counter in (self, pipe.generator):  # the generator's counters are the Pipeline's (eval_seconds)
            counter.network_seconds += stats["network_seconds"]
            counter.network_calls += stats["network_calls"]
        return out.reshape(n, *self.manifest.sample_shape)

    def _preview_params(self, sp: SampleParams, preview, every: int) -> None:
        """The ABI 5 preview: the library's (decoded) x0 prediction of the running batch, copied out as
        (n, *sample shape) for ``preview(done, total, images)``; False cancels (after _params)."""
        if preview is None:
            return
        raised, shape = self._raised, tuple(self.manifest.sample_shape)

        def trampoline(done, total, image, n, c, h, w, _user):  # never lets an exception cross into C
            try:
                flat = np.ctypeslib.as_array(image, shape=(n * c * h * w,))
                images = flat.reshape(n, *shape) if flat.size == n * int(np.prod(shape)) else flat.reshape(n, c, h, w)
                return 1 if preview(int(done), int(total), images.copy()) is False else 0
            except BaseException as e:  # noqa: BLE001 - re-raised after the call returns
                raised.append(e)
                return 1
        self._preview_fn = PreviewFn(trampoline)  # referenced until the next call
        sp.preview, sp.preview_every = self._preview_fn, int(every)

    def _image_params(self, sp: SampleParams, init_image, mask, keep: list) -> None:
        """init_image (C, H, W) or (k, C, H, W) and mask (H, W) or (1, H, W) into the ABI 4 fields;
        the library checks them against the model (pipeline.py's rules and words)."""
        img = np.ascontiguousarray(init_image, dtype=np.float32)
        shape = tuple(self.manifest.sample_shape)
        if img.ndim not in (3, 4):
            raise EdgegenError(f"the init image is {_dims(img.shape)}, this model takes {_dims(shape)} "
                               "(channels x height x width)")
        count = img.shape[0] if img.ndim == 4 else 1
        keep.append(img)
        sp.init_image = img.ctypes.data_as(F32P)
        sp.image_count = count
        sp.image_channels, sp.image_height, sp.image_width = img.shape[-3:]
        if mask is not None:
            m = np.ascontiguousarray(mask, dtype=np.float32)
            if m.ndim == 3 and m.shape[0] == 1:
                m = m[0]
            if m.ndim != 2:
                raise EdgegenError(f"the mask is {_dims(m.shape)}, it must be {_dims(shape[1:])} like the image")
            keep.append(m)
            sp.mask = m.ctypes.data_as(F32P)
            sp.mask_height, sp.mask_width = m.shape

    def token_executor(self):
        return None if self.is_decoder else self

    def generate_tokens(self, cond, seed: int, batch_size: int, sampling, callback=None) -> tuple[np.ndarray, dict]:
        """The token executor protocol (stages.TokenGenerator): the whole token loop in C++.

        ``cond``: the stages.Conditioning (labels for label-token models, prompt token ids for
        prompt models); ``sampling``: a tokens.TokenSampling. Returns codes (n, image_tokens) and
        the library's timing; callback(done, total) after every token, False cancels."""
        n = len(cond.labels)
        sp = self._params(n, seed, batch_size, callback)
        sp.temperature, sp.top_p = float(sampling.temperature), float(sampling.top_p)
        sp.top_k = int(sampling.top_k or 0)
        keep = []
        if self.manifest.stage("condition")["kind"] == "prompt":
            tokens = np.ascontiguousarray(cond.tokens, dtype=np.int64)
            keep.append(tokens)
            sp.prompt_tokens, sp.prompt_len, sp.prompt_count = tokens.ctypes.data_as(I64P), tokens.shape[1], n
        else:
            y = np.ascontiguousarray(cond.labels, dtype=np.int64)
            keep.append(y)
            sp.labels = y.ctypes.data_as(I64P)
        codes = np.empty((n, int(self.manifest.generator["image_tokens"])), dtype=np.int64)
        sp.codes_out, sp.codes_count = codes.ctypes.data_as(I64P), codes.size
        stats = self._call(sp, None, 0, callback)
        self.network_seconds += stats["network_seconds"]
        self.network_calls += stats["network_calls"]
        return codes, stats

    def execute(self, plan, req) -> np.ndarray:
        """The executor protocol: the whole plan in C++, req.callback called after every step."""
        out, stats = self.run_plan(plan.to_json(), req.labels, req.seed, req.batch_size, req.guidance,
                                   req.null_label, req.sample_shape, callback=req.callback)
        self.network_seconds += stats["network_seconds"]
        self.network_calls += stats["network_calls"]
        return out

    def cancel(self) -> None:
        """Stop the run_plan in progress on this backend (callable from another thread)."""
        if getattr(self, "_handle", None):
            _check(self._lib.edgegen_cancel(self._handle))

    def run_plan(self, plan: dict, labels: np.ndarray, seed: int, batch_size: int, guidance: float,
                 null_label: Optional[int], sample_shape, callback=None) -> tuple[np.ndarray, dict]:
        """Run a whole plan (plans.py JSON) natively; returns (samples, timing stats).

        callback(done, total) is called after every network step (across batches); returning
        False cancels (edgegen.errors.Cancelled); an exception it raises stops the run and is
        re-raised here."""
        sp = self._params(len(labels), seed, batch_size, callback)
        plan_text = json.dumps(plan).encode()
        sp.plan_json = plan_text
        sp.guidance = float(guidance) if guidance is not None else math.nan
        y = np.ascontiguousarray(labels, dtype=np.int64)
        if self.manifest.num_classes > 0:  # unconditional models take the library's default (null) labels
            sp.labels = y.ctypes.data_as(I64P)
        count = ctypes.c_size_t()
        _check(self._lib.edgegen_sample_count(self._handle, ctypes.byref(sp), ctypes.byref(count)))
        out = np.empty(count.value, dtype=np.float32)
        stats = self._call(sp, out, out.size, callback)
        shape = (len(labels), *(plan.get("shapes", {}).get(plan["output"], sample_shape)))
        return out.reshape(shape), stats

    def _params(self, n: int, seed: int, batch_size: int, callback) -> SampleParams:
        sp = SampleParams()
        self._lib.edgegen_sample_params_init(ctypes.byref(sp))
        sp.n, sp.seed, sp.batch_size = n, int(seed), int(batch_size)
        self._raised: list[BaseException] = []
        if callback is not None:
            raised = self._raised

            def trampoline(done, total, _user):  # never lets an exception cross into C
                try:
                    return 1 if callback(int(done), int(total)) is False else 0
                except BaseException as e:  # noqa: BLE001 - re-raised after the call returns
                    raised.append(e)
                    return 1
            self._progress_fn = ProgressFn(trampoline)  # referenced until the next call
            sp.progress = self._progress_fn
        return sp

    def _call(self, sp: SampleParams, out: Optional[np.ndarray], count: int, callback) -> dict:
        """edgegen_sample; a callback's exception is re-raised, a cancel raises Cancelled."""
        stats = Stats()
        ptr = out.ctypes.data_as(F32P) if out is not None else None
        status = self._lib.edgegen_sample(self._handle, ctypes.byref(sp), ptr, count, ctypes.byref(stats))
        if self._raised:
            raise self._raised[0]
        if status == CANCELLED:
            raise Cancelled(self._lib.edgegen_last_error().decode(errors="replace"))
        _check(status)
        self.last_stats = {"total_seconds": stats.total_seconds, "network_seconds": stats.network_seconds,
                           "network_calls": int(stats.network_calls)}  # as timed inside the library
        return dict(self.last_stats)

    def close(self) -> None:
        if getattr(self, "_handle", None) and getattr(self, "_lib", None):
            self._lib.edgegen_bundle_free(self._handle)
            self._handle = None

    def __del__(self):
        self.close()


def _c_text(prompt) -> Optional[bytes]:
    """A prompt as a C string (UTF-8), None when it cannot be one (not a str, a NUL, a lone surrogate)."""
    if not isinstance(prompt, str) or "\x00" in prompt:
        return None
    try:
        return prompt.encode("utf-8")
    except UnicodeEncodeError:
        return None


def _dims(shape) -> str:
    return "x".join(str(int(d)) for d in shape)
