"""Imported diffusers pipelines (edgegen import): networks rebuilt from their stored diffusers configs.

Not trained here: ``edgegen import PATH`` (train/diffusers_import.py) reads a folder written by
diffusers' ``save_pretrained`` and writes a bundle whose ``training.config`` is a DiffusersConfig
(the pipeline class and each component's diffusers config). ``build(cfg)`` recreates the role
modules from it (random weights; the torch backend then loads the bundle's safetensors), which
is how ``--backend torch`` runs an imported bundle.

A user's own network (``edgegen import --module FILE.py:CLASS``, train/module_import.py) is
pipeline ``"module"``: its component holds the Python source of the file that defines the class.
Rebuilding it runs that code, so ``build`` does it only when the source's sha256 is on this
machine's allow-list (edgegen/trust.py; the importer adds it); the ONNX, OpenVINO and native
backends never need it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from edgegen.errors import EdgegenError

PRESETS = ("imported",)


@dataclass
class DiffusersConfig:
    pipeline: str = ""  # the diffusers pipeline class (model_index.json "_class_name")
    source: str = ""  # the folder it was imported from (provenance only)
    components: dict = field(default_factory=dict)  # name -> {"class": ..., "config": {...}} (diffusers configs)


def preset(name: str) -> DiffusersConfig:
    if name not in PRESETS:
        raise KeyError(name)
    return DiffusersConfig()


class PixelDenoiser(torch.nn.Module):
    """A UNet2DModel as an edgegen denoiser role: forward(x, t[, y]) -> the model output.

    x (B, C, H, W) float32, t (B,) float32 (diffusers' timestep: integer-valued for DDPM/DDIM,
    fractional for Euler-type schedulers), y (B,) int64 class labels when the UNet has
    ``num_class_embeds``. Labels are clamped to the model's classes: the parity gate's random
    inputs include edgegen's null-label slot (num_classes), which an imported class-conditional
    UNet does not have (no classifier-free guidance for imported class-conditional models)."""

    def __init__(self, unet: torch.nn.Module):
        super().__init__()
        self.unet = unet
        self.num_classes = int(unet.config.num_class_embeds or 0)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        labels = None if y is None or self.num_classes == 0 else y.clamp(0, self.num_classes - 1)
        return self.unet(x, t, class_labels=labels, return_dict=False)[0]


class TextEncoder(torch.nn.Module):
    """A CLIPTextModel as the text_encoder role: forward(tokens) -> context, its last hidden state
    (B, L, D), as StableDiffusionPipeline encodes prompts (no attention mask, no clip skip).

    edgegen's tokenizer.json gets one extra token, ``[PAD]`` = ``pad_in`` (runtimes/text.py pads
    with it, and the empty null prompt is a row of it); this role maps it to what the diffusers
    tokenizer produces: ``[PAD]`` -> the CLIP pad id, and a row that starts with ``[PAD]`` (the
    empty prompt) -> [BOS, EOS, pad, ...], which is how CLIP tokenizes "" for the unconditional
    context of classifier-free guidance."""

    def __init__(self, clip: torch.nn.Module, pad_in: int, pad_id: int, bos_id: int, eos_id: int):
        super().__init__()
        self.clip = clip
        self.pad_in, self.pad_id, self.bos_id, self.eos_id = int(pad_in), int(pad_id), int(bos_id), int(eos_id)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(tokens.shape[1], device=tokens.device)[None, :]  # (1, L)
        empty = tokens[:, :1] == self.pad_in  # (B, 1): the empty prompt
        tokens = torch.where(empty & (pos == 0), torch.full_like(tokens, self.bos_id), tokens)
        tokens = torch.where(empty & (pos == 1), torch.full_like(tokens, self.eos_id), tokens)
        tokens = torch.where(tokens == self.pad_in, torch.full_like(tokens, self.pad_id), tokens)
        return self.clip(input_ids=tokens, return_dict=False)[0]


class ContextDenoiser(torch.nn.Module):
    """A UNet2DConditionModel as the denoiser role: forward(x, t, context) -> the model output."""

    def __init__(self, unet: torch.nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t, encoder_hidden_states=context, return_dict=False)[0]


class VaeDecoder(torch.nn.Module):
    """AutoencoderKL's decoding half: z (B, 4, h, w), already divided by the scaling factor ->
    x in [-1, 1] (post_quant_conv, then the decoder; what ``vae.decode`` does without tiling)."""

    def __init__(self, vae: torch.nn.Module):
        super().__init__()
        self.post_quant_conv, self.decoder = vae.post_quant_conv, vae.decoder

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.post_quant_conv is not None:
            z = self.post_quant_conv(z)
        return self.decoder(z)


class VaeEncoder(torch.nn.Module):
    """AutoencoderKL's encoding half: x -> the mean of the latent distribution (its first half of
    channels; deterministic, the stage multiplies by the scaling factor)."""

    def __init__(self, vae: torch.nn.Module):
        super().__init__()
        self.encoder, self.quant_conv = vae.encoder, vae.quant_conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        if self.quant_conv is not None:
            h = self.quant_conv(h)
        return h[:, : h.shape[1] // 2]


class OwnDenoiser(torch.nn.Module):
    """A user's own denoiser as the role: forward(x, t[, y]) -> the model output, shaped like x.

    t (B,) float32 is the scheduler's timestep (what diffusers passes a UNet); y (B,) int64 labels
    when the model is class-conditional, clamped to its classes unless it has a null label (index
    ``num_classes``, for classifier-free guidance) since the parity gate's inputs include that slot.
    A tuple/list output or a diffusers-style output object gives its first tensor / ``.sample``."""

    def __init__(self, net: torch.nn.Module, num_classes: int = 0, null_label: bool = False):
        super().__init__()
        self.net = net
        self.num_classes, self.null_label = int(num_classes), bool(null_label)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is None or self.num_classes == 0:
            out = self.net(x, t)
        else:
            out = self.net(x, t, y if self.null_label else y.clamp(0, self.num_classes - 1))
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.sample if hasattr(out, "sample") else out


def own_class(source: str, name: str, filename: str) -> type:
    """The class ``name`` defined by the Python ``source`` (run as a module of its own, registered
    in sys.modules under its sha256 so dataclasses, pickling-free tracing and tracebacks work).
    The caller decides whether running the source is trusted."""
    import hashlib
    import linecache
    import sys
    import types
    digest = hashlib.sha256(source.encode()).hexdigest()
    modname = f"edgegen_own_module_{digest[:16]}"
    mod = sys.modules.get(modname)
    if mod is None:
        mod = types.ModuleType(modname)
        mod.__file__ = filename
        sys.modules[modname] = mod
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        try:
            exec(compile(source, filename, "exec"), mod.__dict__)  # noqa: S102 (the user's own code, see build)
        except Exception as e:  # any error of the user's file: one line naming it
            del sys.modules[modname]
            raise EdgegenError(f"running {filename} failed: {type(e).__name__}: "
                               f"{(str(e).strip().splitlines() or [''])[0]}") from None
    cls = getattr(mod, name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        found = sorted(k for k, v in vars(mod).items() if isinstance(v, type) and issubclass(v, torch.nn.Module)
                       and v.__module__ == modname)
        raise EdgegenError(f"{filename} defines no torch.nn.Module class {name!r} (its classes: "
                           f"{', '.join(found) or 'none'})")
    return cls


def own_module(spec: dict, trusted: bool = False) -> torch.nn.Module:
    """The user's network from a stored ``module`` component (random weights, seed 0).

    ``trusted``: the caller vouches for the source (the importer, given the user's own file);
    otherwise its sha256 must be on this machine's allow-list (edgegen/trust.py)."""
    import hashlib
    from edgegen.trust import allow_list_path, trusted_hashes
    source, digest = spec["source"], spec["sha256"]
    if hashlib.sha256(source.encode()).hexdigest() != digest:
        raise EdgegenError(f"the stored source of {spec['class']} does not match its sha256 (edited bundle?)")
    if not trusted and digest not in trusted_hashes():
        raise EdgegenError(f"refusing to run the Python source of {spec['class']} ({spec['file']}) stored in this "
                           f"bundle: code this machine did not import (sha256 {digest[:16]}...); add its sha256 to "
                           f"{allow_list_path()} if you trust the bundle's author, or use the onnxruntime, openvino "
                           f"or native backend, which do not need it")
    cls = own_class(source, spec["class"], spec["file"])
    torch.manual_seed(0)
    try:
        net = cls(**spec.get("kwargs", {}))
    except Exception as e:  # the user's constructor: one line
        raise EdgegenError(f"{spec['class']}(**{spec.get('kwargs', {})}) failed: {type(e).__name__}: "
                           f"{(str(e).strip().splitlines() or [''])[0]}") from None
    return net.eval()


def _diffusers():
    try:
        import diffusers
    except ImportError:
        raise EdgegenError("imported diffusers models need the Python package 'diffusers': "
                           "pip install 'edgegen[import]'") from None
    return diffusers


def component(cfg: DiffusersConfig, name: str) -> torch.nn.Module:
    """The diffusers (or transformers) model of one component, built from its stored config (random weights)."""
    spec = cfg.components[name]
    config = {k: v for k, v in spec["config"].items() if not k.startswith("_")}
    if spec["class"] == "CLIPTextModel":
        try:
            import transformers
        except ImportError:
            raise EdgegenError("imported text-to-image models need the Python package 'transformers': "
                               "pip install 'edgegen[import]'") from None
        config.pop("architectures", None)
        model = transformers.CLIPTextModel(transformers.CLIPTextConfig(**config))
    else:
        model = getattr(_diffusers(), spec["class"]).from_config(config)
    return model.eval()


def build(cfg: DiffusersConfig, trusted: bool = False) -> dict[str, torch.nn.Module]:
    if cfg.pipeline == "module":  # a user's own network (train/module_import.py)
        spec = cfg.components["module"]
        net = own_module(spec, trusted)
        return {"denoiser": OwnDenoiser(net, spec.get("num_classes", 0), spec.get("null_label", False)).eval()}
    if cfg.pipeline in ("DDPMPipeline", "DDIMPipeline"):
        return {"denoiser": PixelDenoiser(component(cfg, "unet")).eval()}
    if cfg.pipeline == "StableDiffusionPipeline":
        vae, tok = component(cfg, "vae"), cfg.components["tokenizer"]["ids"]
        # text encoder and VAE first: the denoiser's parity gate runs the whole pipeline on each format
        return {"text_encoder": TextEncoder(component(cfg, "text_encoder"), **tok).eval(),
                "vae_decoder": VaeDecoder(vae).eval(), "vae_encoder": VaeEncoder(vae).eval(),
                "denoiser": ContextDenoiser(component(cfg, "unet")).eval()}
    raise EdgegenError(f"unsupported imported pipeline {cfg.pipeline!r} (supported: DDPMPipeline, DDIMPipeline, "
                       f"StableDiffusionPipeline, module)")


def roles(cfg: DiffusersConfig):
    if cfg.pipeline == "module":
        from edgegen.train.module_import import own_roles
        spec = cfg.components["module"]
        return own_roles(spec["shape"], spec.get("num_classes", 0))
    from edgegen.train.diffusers_import import pixel_roles
    return pixel_roles(cfg.components["unet"]["config"])


def train(cfg: DiffusersConfig, progress: bool = True):
    raise EdgegenError("diffusers models are imported, not trained here: edgegen import PATH --out bundles/NAME")
