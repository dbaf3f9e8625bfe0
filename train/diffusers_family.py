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


def _diffusers():
    try:
        import diffusers
    except ImportError:
        raise EdgegenError("imported diffusers models need the Python package 'diffusers': "
                           "pip install 'edgegen[import]'") from None
    return diffusers


def component(cfg: DiffusersConfig, name: str) -> torch.nn.Module:
    """The diffusers model of one component, built from its stored config (random weights)."""
    spec = cfg.components[name]
    cls = getattr(_diffusers(), spec["class"])
    model = cls.from_config({k: v for k, v in spec["config"].items() if not k.startswith("_")})
    return model.eval()


def build(cfg: DiffusersConfig) -> dict[str, torch.nn.Module]:
    if cfg.pipeline in ("DDPMPipeline", "DDIMPipeline"):
        return {"denoiser": PixelDenoiser(component(cfg, "unet")).eval()}
    raise EdgegenError(f"unsupported imported pipeline {cfg.pipeline!r} (supported: DDPMPipeline, DDIMPipeline)")


def roles(cfg: DiffusersConfig):
    from edgegen.train.diffusers_import import pixel_roles
    return pixel_roles(cfg.components["unet"]["config"])


def train(cfg: DiffusersConfig, progress: bool = True):
    raise EdgegenError("diffusers models are imported, not trained here: edgegen import PATH --out bundles/NAME")
