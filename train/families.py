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

# Families whose models come from elsewhere: `edgegen train` and `edgegen demo` refuse them with
# this message and do not list them (read without importing the family, which needs torch).
NOT_TRAINABLE = {"diffusers": "diffusers models are imported, not trained here: edgegen import PATH "
                              "(a save_pretrained folder, or --module FILE.py:CLASS for your own network)"}


def trainable() -> list[str]:
    """The families `edgegen train` and `edgegen demo` offer, sorted."""
    return sorted(f for f in FAMILIES if f not in NOT_TRAINABLE)


def check_trainable(name: str) -> None:
    """One line for a family that cannot be trained here (or is unknown)."""
    if name in NOT_TRAINABLE:
        raise EdgegenError(NOT_TRAINABLE[name])
    if name not in FAMILIES:
        raise EdgegenError(f"unknown model '{name}' (choose {', '.join(trainable())})")


def get_family(name: str) -> ModuleType:
    if name not in FAMILIES:
        raise EdgegenError(f"unknown model '{name}' (choose {', '.join(sorted(FAMILIES))})")
    return importlib.import_module(FAMILIES[name])


def get_preset(family: str, preset: str):
    fam = get_family(family)
    if preset not in fam.PRESETS:
        raise EdgegenError(f"unknown preset '{preset}' for {family} (choose {', '.join(fam.PRESETS)})")
    return fam.preset(preset)
