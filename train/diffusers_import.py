"""``edgegen import``: a folder written by diffusers' ``save_pretrained`` -> an ordinary edgegen bundle.

The folder is read (model_index.json, each component's config and safetensors weights), every
unsupported thing is refused in one line before anything is written, and the networks go through
the normal exporter (export/bundle.py: ONNX, OpenVINO, the parity gate) as an ExportSource.

Pixel pipelines (DDPMPipeline, DDIMPipeline): one role, ``denoiser`` = the UNet2DModel as
forward(x, t[, y]) (train/diffusers_family.PixelDenoiser). The generator stage is a plan of process
``diffusers`` over the pipeline's own scheduler config (runtimes/diffusers_plans.py), whose default
sampler and steps are what the pipeline does by default, so ``edgegen sample B --steps N`` is the
diffusers pipeline with ``num_inference_steps=N``, its initial noise the Philox draw 0 times the
scheduler's init_noise_sigma.

This module lives in train/ because the modules it builds (diffusers_family) are training-side code
(layer rule: export never imports train).
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import torch

from edgegen import __version__
from edgegen.config import to_dict
from edgegen.errors import EdgegenError
from edgegen.export.source import ExportSource
from edgegen.manifest import SCHEMA_VERSION
from edgegen.roles import RoleSpec, TensorSpec
from edgegen.train.diffusers_family import DiffusersConfig, build

# pipeline class -> (its components: name -> the diffusers class it must be, default steps, default options)
PIXEL_PIPELINES = {"DDPMPipeline": 1000, "DDIMPipeline": 50}
PIPELINES = tuple(PIXEL_PIPELINES) + ("StableDiffusionPipeline",)
WEIGHTS = "diffusion_pytorch_model.safetensors"

# UNet2DModel options whose values edgegen does not support (the rest of its options are plain
# architecture: block types, widths, norms, attention, which the exporter handles as any module).
UNET_CHOICES = {"time_embedding_type": ("positional",), "class_embed_type": (None,)}
COND_UNET_CHOICES = {"time_embedding_type": ("positional",), "class_embed_type": (None,), "num_class_embeds": (None,),
                     "addition_embed_type": (None,), "time_cond_proj_dim": (None,), "encoder_hid_dim_type": (None,)}
VAE_CHOICES = {"shift_factor": (None, 0, 0.0)}
SD_STEPS, SD_GUIDANCE = 50, 7.5  # StableDiffusionPipeline's num_inference_steps and guidance_scale defaults
DEFAULT_PROMPT = "a photo"  # the stored prompt of the gate and of label-less calls


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise EdgegenError(f"{what}: missing {path}") from None
    except (OSError, ValueError) as e:
        raise EdgegenError(f"{what}: cannot read {path} ({e})") from None
    if not isinstance(data, dict):
        raise EdgegenError(f"{what}: {path} is not a JSON object")
    return data


def read_index(path: Path) -> dict:
    """model_index.json, with the pipeline class checked."""
    path = Path(path)
    if not (path / "model_index.json").is_file():
        raise EdgegenError(f"{path} is not a diffusers pipeline folder (no model_index.json; "
                           f"save one with pipeline.save_pretrained)")
    index = _read_json(path / "model_index.json", "diffusers pipeline")
    cls = index.get("_class_name")
    if cls not in PIPELINES:
        raise EdgegenError(f"unsupported pipeline class {cls!r} (supported: {', '.join(PIPELINES)})")
    return index


def _component(path: Path, index: dict, name: str, classes: tuple[str, ...], config_file: str) -> tuple[str, dict]:
    """(class, config) of one component, its class checked against model_index and config."""
    entry = index.get(name)
    if not (isinstance(entry, list) and len(entry) == 2 and entry[1]):
        raise EdgegenError(f"{index['_class_name']} in {path} has no '{name}' component in model_index.json")
    config = _read_json(path / name / config_file, f"component {name}")
    cls = config.get("_class_name", entry[1])
    if cls not in classes:
        raise EdgegenError(f"unsupported {name} class {cls!r} (supported: {', '.join(classes)})")
    return cls, config


def check_model_config(cls_name: str, config: dict, choices: dict) -> None:
    """Refuse options the installed diffusers class does not know (a newer format whose meaning
    edgegen cannot check) and values edgegen does not support, by name."""
    import diffusers
    params = inspect.signature(getattr(diffusers, cls_name).__init__).parameters
    unknown = sorted(k for k in config if not k.startswith("_") and k not in params)
    if unknown:
        raise EdgegenError(f"unsupported {cls_name} config option(s) {', '.join(unknown)} (not known to "
                           f"diffusers {diffusers.__version__})")
    for key, allowed in choices.items():
        value = config.get(key, params[key].default if key in params else None)
        if value not in allowed:
            raise EdgegenError(f"unsupported {cls_name} option {key}={value!r} (supported: "
                               f"{', '.join(repr(a) for a in allowed)})")


def load_weights(module: torch.nn.Module, folder: Path, name: str, weights: str = WEIGHTS) -> None:
    """The component's safetensors weights into ``module``, every name and shape checked."""
    from safetensors.torch import load_file
    single, sharded = folder / weights, folder / (weights + ".index.json")
    if single.is_file():
        state = load_file(str(single))
    elif sharded.is_file():
        files = sorted(set(_read_json(sharded, f"component {name}").get("weight_map", {}).values()))
        state = {}
        for f in files:
            state.update(load_file(str(folder / f)))
    else:
        found = sorted(p.name for p in folder.glob(weights.split(".")[0] + "*"))
        raise EdgegenError(f"component {name}: no {weights} in {folder}" + (
            f" (found {', '.join(found)}: edgegen reads safetensors only; save with safe_serialization=True)"
            if found else ""))
    load_checked(module, state, f"component {name}", "its config")


def load_checked(module: torch.nn.Module, state: dict, what: str, against: str = "its config") -> None:
    """``state`` into ``module`` after checking every name and shape (one line naming the first
    missing, unexpected and reshaped tensor)."""
    own = module.state_dict()
    ref = "the " + against[4:] if against.startswith("its ") else against  # "the config", "the class"
    # buffers a module does not save (CLIP's position_ids) may still be in older files: not weights
    transient = {n for n, _ in module.named_buffers()} - set(own)
    state = _legacy_names(state, set(own) | transient)
    state = {k: v for k, v in state.items() if k not in transient}
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or extra or wrong:
        parts = []
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} with another shape (e.g. {k}: {list(state[k].shape)} in the file, "
                         f"{list(own[k].shape)} from {ref})")
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if extra:
            parts.append(f"{len(extra)} not in {ref} (e.g. {extra[0]})")
        raise EdgegenError(f"{what}: weights do not match {against}: {'; '.join(parts)}")
    module.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})


# Attention weights of checkpoints saved before diffusers renamed them (many published VAEs).
_LEGACY_ATTENTION = {".query.": ".to_q.", ".key.": ".to_k.", ".value.": ".to_v.", ".proj_attn.": ".to_out.0."}


def _legacy_names(state: dict, known: set) -> dict:
    """Rename keys of older savers to the module's names (``known``: its state-dict keys and
    buffers) when the file lacks the current name: legacy attention keys (query/key/value/proj_attn),
    and CLIP's ``text_model.`` prefix (transformers 4 files read by transformers 5, and back)."""
    out = {}
    for k, v in state.items():
        new = k
        if k not in known:
            legacy = k
            for old, cur in _LEGACY_ATTENTION.items():
                legacy = legacy.replace(old, cur)
            for cand in (legacy, k.removeprefix("text_model."), "text_model." + k):
                if cand in known and cand not in state:
                    new = cand
                    break
        out[new] = v
    return out


# -- pixel pipelines ------------------------------------------------------------------------
def _sample_shape(config: dict) -> tuple[int, int, int]:
    size = config.get("sample_size")
    if isinstance(size, int):
        h = w = size
    elif isinstance(size, (list, tuple)) and len(size) == 2:
        h, w = (int(v) for v in size)
    else:
        raise EdgegenError(f"unsupported UNet2DModel sample_size={size!r} (supported: an int or [height, width])")
    return int(config.get("in_channels", 3)), h, w


def pixel_roles(config: dict) -> dict[str, RoleSpec]:
    c, h, w = _sample_shape(config)
    cond = bool(config.get("num_class_embeds"))
    inputs = [TensorSpec("x", ("batch", c, h, w), "float32"), TensorSpec("t", ("batch",), "float32")]
    meta = {"time_input": "t"}
    if cond:
        inputs.append(TensorSpec("y", ("batch",), "int64"))
        meta["label_input"] = "y"
    return {"denoiser": RoleSpec(tuple(inputs), (TensorSpec("out", ("batch", c, h, w), "float32"),), meta)}


def scheduler_stage(pipeline: str, scheduler: dict, default_steps: int, sampler: str | None = None,
                    gate_steps: int | None = None, **defaults) -> dict:
    """The generator stage of process ``diffusers``: the pipeline's scheduler and its defaults.

    ``sampler``: the bundle's default sampler instead of the one equivalent to the scheduler's class
    (needed for classes edgegen has no sampler for, PNDMScheduler and LMSDiscreteScheduler, whose
    configs still give the betas, prediction type and spacing every other sampler uses).
    ``gate_steps``: the parity gate's trajectory length (default min(default steps, 50); a
    Stable-Diffusion-sized import on a CPU gates a couple of steps)."""
    from edgegen.runtimes.diffusers_plans import default_sampler
    from edgegen.runtimes.diffusers_schedules import FLOW_CLASSES
    from edgegen.runtimes.samplers import compile_plan, samplers
    flow = scheduler.get("_class_name") in FLOW_CLASSES
    names = [s for s in samplers("diffusers") if (s == "flow_euler") == flow]
    if sampler is not None and sampler not in names:
        raise EdgegenError(f"unknown sampler {sampler!r} for this scheduler config (choose {', '.join(names)})")
    if sampler is None:  # DDIMPipeline converts any scheduler to DDIM in its constructor
        sampler = "ddim" if pipeline == "DDIMPipeline" else default_sampler(scheduler)
    T = int(scheduler.get("num_train_timesteps", 1000))
    steps = min(default_steps, T)  # diffusers refuses more inference steps than training steps
    stage = {"kind": "plan", "role": "denoiser", "process": "diffusers", "scheduler": scheduler,
             "defaults": {"sampler": sampler, "steps": steps, **defaults}, "samplers": names,
             # the parity gate's trajectory: the default sampler, at most 50 steps
             "gate": {"sampler": sampler, "steps": min(steps, int(gate_steps or 50))}}
    compile_plan(stage)  # every scheduler option is checked now: refused in one line before anything is written
    return stage


def _pixel_source(path: Path, index: dict, sampler: str | None = None, gate_steps: int | None = None):
    pipeline = index["_class_name"]
    unet_cls, unet_cfg = _component(path, index, "unet", ("UNet2DModel",), "config.json")
    check_model_config(unet_cls, unet_cfg, UNET_CHOICES)
    c, h, w = _sample_shape(unet_cfg)
    if int(unet_cfg.get("out_channels", 3)) != c:
        raise EdgegenError(f"unsupported UNet2DModel with out_channels={unet_cfg.get('out_channels')} != "
                           f"in_channels={c} (learned variances; supported: out_channels == in_channels)")
    sched_cls, sched_cfg = _component(path, index, "scheduler", _scheduler_classes(), "scheduler_config.json")
    sched_cfg = {**sched_cfg, "_class_name": sched_cls}
    extra = {"eta": 0.0} if pipeline == "DDIMPipeline" else {}
    if sampler not in (None, "ddim"):
        extra = {}
    stage = scheduler_stage(pipeline, sched_cfg, PIXEL_PIPELINES[pipeline], sampler, gate_steps, **extra)
    k = int(unet_cfg.get("num_class_embeds") or 0)
    cfg = DiffusersConfig(pipeline=pipeline, source=str(path),
                          components={"unet": {"class": unet_cls, "config": unet_cfg}})
    modules = build(cfg)
    load_weights(modules["denoiser"].unet, path / "unet", "unet")
    params = sum(p.numel() for p in modules["denoiser"].parameters())
    roles = {name: spec.to_json() for name, spec in pixel_roles(unet_cfg).items()}
    data = {"schema_version": SCHEMA_VERSION, "edgegen_version": __version__, "family": "diffusers",
            "data": {"source": f"diffusers:{pipeline}", "shape": [c, h, w], "range": [-1.0, 1.0], "layout": "NCHW",
                     "num_classes": k, "null_label": None},
            "roles": roles,
            "pipeline": {"condition": {"kind": "label" if k else "none"}, "generator": stage},
            "plans": {}, "training": {"config": to_dict(cfg), "stats": {"parameters": params}}}
    return ExportSource(data, modules)


# -- latent text-to-image (StableDiffusionPipeline; docs/notes/latent-stages.md) -------------------
TOKENIZER_CLASSES = ("CLIPTokenizer", "CLIPTokenizerFast")


def convert_tokenizer(folder: Path, out: Path) -> dict:
    """The pipeline's CLIP tokenizer as one Hugging Face tokenizer.json (``tokenizers`` reads it in
    Python; the native runtime reads the same file) plus the ids the text-encoder role needs.

    The file is the fast tokenizer's own (BOS/EOS by its post-processor, CLIP's normalizer), with
    padding and truncation off (edgegen pads, and refuses over-long prompts) and one added token
    ``[PAD]``, the pad token edgegen's runtime uses (runtimes/text.py); the text-encoder role maps it
    back (diffusers_family.TextEncoder)."""
    has_json = (folder / "tokenizer.json").is_file()
    missing = [f for f in ("vocab.json", "merges.txt") if not (folder / f).is_file()]
    if not has_json and missing:
        raise EdgegenError(f"tokenizer in {folder} lacks {', '.join(missing)} (a CLIPTokenizer needs vocab.json and "
                           f"merges.txt, or tokenizer.json)")
    try:
        import transformers
    except ImportError:
        raise EdgegenError("importing a CLIP tokenizer needs the Python package 'transformers': "
                           "pip install 'edgegen[import]'") from None
    try:
        tok = transformers.CLIPTokenizerFast.from_pretrained(str(folder))
    except Exception as e:  # transformers raises many types for a broken tokenizer folder
        raise EdgegenError(f"cannot read the CLIP tokenizer in {folder}: {str(e).strip().splitlines()[0]}") from None
    data = json.loads(tok.backend_tokenizer.to_str())
    data["padding"], data["truncation"] = None, None
    vocab = tok.backend_tokenizer.get_vocab()
    if "[PAD]" in vocab:
        raise EdgegenError("unsupported CLIP tokenizer with a '[PAD]' token (edgegen's runtime pads with it)")
    ids = {"pad_in": max(vocab.values()) + 1, "pad_id": tok.pad_token_id, "bos_id": tok.bos_token_id,
           "eos_id": tok.eos_token_id}
    if None in ids.values():
        raise EdgegenError(f"unsupported CLIP tokenizer without pad, bos or eos token ({ids})")
    data["added_tokens"].append({"id": ids["pad_in"], "content": "[PAD]", "single_word": False, "lstrip": False,
                                 "rstrip": False, "normalized": False, "special": True})
    out.write_text(json.dumps(data))
    from tokenizers import Tokenizer
    check = Tokenizer.from_file(str(out))
    if check.get_vocab().get("[PAD]") != ids["pad_in"]:
        raise EdgegenError("could not add edgegen's [PAD] token to the CLIP tokenizer")
    return {"ids": ids, "model_max_length": int(min(tok.model_max_length, 10 ** 6))}


def _latent_source(path: Path, index: dict, scratch: Path, sampler: str | None = None,
                   gate_steps: int | None = None):
    pipeline = index["_class_name"]
    unet_cls, unet_cfg = _component(path, index, "unet", ("UNet2DConditionModel",), "config.json")
    check_model_config(unet_cls, unet_cfg, COND_UNET_CHOICES)
    vae_cls, vae_cfg = _component(path, index, "vae", ("AutoencoderKL",), "config.json")
    check_model_config(vae_cls, vae_cfg, VAE_CHOICES)
    te_cls, te_cfg = _component(path, index, "text_encoder", ("CLIPTextModel",), "config.json")
    entry = index.get("tokenizer")
    if not (isinstance(entry, list) and len(entry) == 2 and entry[1] in TOKENIZER_CLASSES):
        raise EdgegenError(f"unsupported tokenizer {entry!r} (supported: {', '.join(TOKENIZER_CLASSES)})")
    sched_cls, sched_cfg = _component(path, index, "scheduler", _scheduler_classes(), "scheduler_config.json")
    stage = scheduler_stage(pipeline, {**sched_cfg, "_class_name": sched_cls}, SD_STEPS, sampler, gate_steps,
                            guidance=SD_GUIDANCE)
    tok_file = scratch / "tokenizer.json"
    tok = convert_tokenizer(path / "tokenizer", tok_file)
    L = min(tok["model_max_length"], int(te_cfg.get("max_position_embeddings", 77)))
    D = int(te_cfg.get("hidden_size", 512))
    if int(unet_cfg.get("cross_attention_dim", 1280)) != D:
        raise EdgegenError(f"unet cross_attention_dim={unet_cfg.get('cross_attention_dim')} does not match the text "
                           f"encoder's hidden_size={D}")
    s = int(unet_cfg.get("sample_size") or 64)
    lc = int(unet_cfg.get("in_channels", 4))
    if int(vae_cfg.get("latent_channels", 4)) != lc or int(unet_cfg.get("out_channels", 4)) != lc:
        raise EdgegenError(f"unet in/out channels {lc}/{unet_cfg.get('out_channels')} do not match the vae's "
                           f"latent_channels={vae_cfg.get('latent_channels')}")
    f = 2 ** (len(vae_cfg.get("block_out_channels", (64,))) - 1)  # the pipeline's vae_scale_factor
    c, size = int(vae_cfg.get("in_channels", 3)), s * f
    cfg = DiffusersConfig(pipeline=pipeline, source=str(path), components={
        "unet": {"class": unet_cls, "config": unet_cfg}, "vae": {"class": vae_cls, "config": vae_cfg},
        "text_encoder": {"class": te_cls, "config": te_cfg}, "tokenizer": {"ids": tok["ids"]}})
    modules = build(cfg)
    load_weights(modules["denoiser"].unet, path / "unet", "unet")
    vae = component_from(modules)
    load_weights(vae, path / "vae", "vae")
    load_weights(modules["text_encoder"].clip, path / "text_encoder", "text_encoder", "model.safetensors")
    scale = float(vae_cfg.get("scaling_factor", 0.18215))
    z = TensorSpec("z", ("batch", lc, s, s), "float32")
    x = TensorSpec("x", ("batch", c, size, size), "float32")
    ctx = TensorSpec("context", ("batch", L, D), "float32")
    roles = {"text_encoder": RoleSpec((TensorSpec("tokens", ("batch", L), "int64"),), (ctx,)),
             "vae_decoder": RoleSpec((z,), (x,)), "vae_encoder": RoleSpec((x,), (z,)),
             "denoiser": RoleSpec((TensorSpec("x", ("batch", lc, s, s), "float32"),
                                   TensorSpec("t", ("batch",), "float32"), ctx),
                                  (TensorSpec("out", ("batch", lc, s, s), "float32"),),
                                  {"time_input": "t", "context_input": "context"})}
    stage["latent_shape"] = [lc, s, s]
    condition = {"kind": "prompt", "tokenizer": {"file": "tokenizer.json", "text_length": L},
                 "label_prompts": [DEFAULT_PROMPT],
                 "encoder": {"role": "text_encoder", "input": "tokens", "output": "context"}, "null_prompt": ""}
    params = sum(p.numel() for m in (modules["denoiser"], vae, modules["text_encoder"]) for p in m.parameters())
    data = {"schema_version": SCHEMA_VERSION, "edgegen_version": __version__, "family": "diffusers",
            "data": {"source": f"diffusers:{pipeline}", "shape": [c, size, size], "range": [-1.0, 1.0],
                     "layout": "NCHW", "num_classes": 0, "null_label": None},
            "roles": {k: v.to_json() for k, v in roles.items()},
            "pipeline": {"condition": condition, "generator": stage,
                         "decoder": {"role": "vae_decoder", "input": "z", "output": "x", "scale": scale},
                         "encoder": {"role": "vae_encoder", "input": "x", "output": "z", "scale": scale}},
            "plans": {}, "training": {"config": to_dict(cfg), "stats": {"parameters": params}}}
    return ExportSource(data, modules, {"tokenizer": tok_file})


def component_from(modules: dict) -> torch.nn.Module:
    """The AutoencoderKL's parameters as its checkpoint names them (encoder, quant_conv, decoder,
    post_quant_conv), held by the two VAE roles: one module to load its weights into."""
    vae = torch.nn.Module()
    dec, enc = modules["vae_decoder"], modules["vae_encoder"]
    vae.encoder, vae.quant_conv, vae.decoder, vae.post_quant_conv = enc.encoder, enc.quant_conv, dec.decoder, \
        dec.post_quant_conv
    return vae


def _scheduler_classes() -> tuple[str, ...]:
    from edgegen.runtimes.diffusers_schedules import SOURCE_CLASSES
    return tuple(SOURCE_CLASSES)


def import_source(path, scratch=None, sampler: str | None = None, gate_steps: int | None = None) -> ExportSource:
    """A diffusers pipeline folder as the exporter's input; one-line EdgegenError for anything
    edgegen does not support (nothing is written)."""
    path = Path(path)
    index = read_index(path)
    with torch.no_grad():
        if index["_class_name"] in PIXEL_PIPELINES:
            return _pixel_source(path, index, sampler, gate_steps)
        if scratch is None:
            raise EdgegenError("importing a text-to-image pipeline needs a scratch folder for its tokenizer.json")
        return _latent_source(path, index, Path(scratch), sampler, gate_steps)


def import_pipeline(path, out, formats=("onnx", "openvino"), progress: bool = True, recipe=None,
                    sampler: str | None = None, gate_steps: int | None = None) -> dict:
    """Import a diffusers pipeline folder and export it to the bundle ``out``; returns verify.json."""
    import tempfile
    from edgegen.export.bundle import export_bundle
    with tempfile.TemporaryDirectory() as scratch:
        source = import_source(path, scratch, sampler, gate_steps)
        return export_bundle(source, list(formats), Path(out), progress=progress, recipe=recipe)
