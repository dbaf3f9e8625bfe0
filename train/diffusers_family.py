"""Imported diffusers pipelines (edgegen import): networks rebuilt from their stored diffusers configs.

Not trained here: ``edgegen import PATH`` (train/diffusers_import.py) reads a folder written by
diffusers' ``save_pretrained`` and writes a bundle whose ``training.config`` is a DiffusersConfig
(the pipeline class and each component's diffusers config). ``build(cfg)`` recreates the role
modules from it (random weights; the torch backend then loads the bundle's safetensors), which
is how ``--backend torch`` runs an imported bundle.
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


def build(cfg: DiffusersConfig) -> dict[str, torch.nn.Module]:
    if cfg.pipeline in ("DDPMPipeline", "DDIMPipeline"):
        return {"denoiser": PixelDenoiser(component(cfg, "unet")).eval()}
    if cfg.pipeline == "StableDiffusionPipeline":
        vae, tok = component(cfg, "vae"), cfg.components["tokenizer"]["ids"]
        # text encoder and VAE first: the denoiser's parity gate runs the whole pipeline on each format
        return {"text_encoder": TextEncoder(component(cfg, "text_encoder"), **tok).eval(),
                "vae_decoder": VaeDecoder(vae).eval(), "vae_encoder": VaeEncoder(vae).eval(),
                "denoiser": ContextDenoiser(component(cfg, "unet")).eval()}
    raise EdgegenError(f"unsupported imported pipeline {cfg.pipeline!r} (supported: DDPMPipeline, DDIMPipeline, "
                       f"StableDiffusionPipeline)")


def roles(cfg: DiffusersConfig):
    from edgegen.train.diffusers_import import pixel_roles
    return pixel_roles(cfg.components["unet"]["config"])


def train(cfg: DiffusersConfig, progress: bool = True):
    raise EdgegenError("diffusers models are imported, not trained here: edgegen import PATH --out bundles/NAME")
