"""The registry of model families. Each family module provides:

``PRESETS``, ``preset(name) -> config``, the config dataclass (``preset(...)``'s type),
``build(cfg) -> {role: nn.Module}``, ``roles(cfg) -> {role: RoleSpec}``,
``sampling_info(cfg)`` and ``data_info(cfg)`` (the manifest sections) and
``train(cfg, progress) -> ({role: trained EMA module}, stats)``.
Export and the runtimes only talk to families through these functions.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from edgegen.errors import EdgegenError

FAMILIES = {"ddpm": "edgegen.train.ddpm", "sde": "edgegen.train.sde", "flow": "edgegen.train.flow",
            "gan": "edgegen.train.gan"}
FAMILIES.update({"vqvae": "edgegen.train.vqvae", "dalle": "edgegen.train.dalle"})
FAMILIES["ldm"] = "edgegen.train.ldm"  # latent text-to-image diffusion (issue 15)
FAMILIES["diffusers"] = "edgegen.train.diffusers_family"  # imported, not trained (edgegen import)


def get_family(name: str) -> ModuleType:
    if name not in FAMILIES:
        raise EdgegenError(f"unknown model '{name}' (choose {', '.join(sorted(FAMILIES))})")
    return importlib.import_module(FAMILIES[name])


def get_preset(family: str, preset: str):
    fam = get_family(family)
    if preset not in fam.PRESETS:
        raise EdgegenError(f"unknown preset '{preset}' for {family} (choose {', '.join(fam.PRESETS)})")
    return fam.preset(preset)
