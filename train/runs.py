"""A training run on disk: ``model.safetensors`` (EMA weights, keys ``<role>.<param>``)
plus ``config.json`` (family, typed config, training stats). Never pickle.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from edgegen import __version__
from edgegen.config import from_dict, to_dict
from edgegen.errors import EdgegenError
from edgegen.paths import atomic_dir
from edgegen.train.families import get_family

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


@dataclass
class Run:
    path: Path
    family: str
    config: object  # the family's config dataclass
    modules: dict  # role -> nn.Module (eval mode, CPU)
    stats: dict


def role_tensors(modules: dict) -> dict:
    """{role: module} -> the flat ``<role>.<param>`` tensor dict stored in safetensors files."""
    return {f"{role}.{k}": v.detach().cpu().contiguous() for role, m in modules.items()
            for k, v in m.state_dict().items()}


def save_run(out: Path, family: str, cfg, modules: dict, stats: dict) -> Path:
    """Write the run folder atomically (temp folder, then rename)."""
    tensors = role_tensors(modules)
    files = stats.pop("files", {})  # text files a recipe keeps with the run (e.g. tokenizer.json)
    meta = {"family": family, "edgegen_version": __version__, "config": to_dict(cfg), "stats": stats,
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "roles": sorted(modules)}
    with atomic_dir(Path(out)) as tmp:
        save_file(tensors, str(tmp / WEIGHTS))
        (tmp / CONFIG).write_text(json.dumps(meta, indent=2))
        for name, text in files.items():
            (tmp / name).write_text(text)
    return Path(out)


def is_run(path: Path) -> bool:
    return (Path(path) / CONFIG).is_file() and not (Path(path) / "manifest.json").exists()


def load_run_config(path: Path):
    path = Path(path)
    cfg_file = path / CONFIG
    if not cfg_file.is_file():
        raise EdgegenError(f"{path} is not a training run (no {CONFIG})")
    try:
        meta = json.loads(cfg_file.read_text())
        family = get_family(meta["family"])
        cfg = from_dict(type(family.preset(family.PRESETS[0])), meta["config"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise EdgegenError(f"corrupt run config {cfg_file}: {e}") from None
    return meta, cfg


def load_state(modules: dict, weights: Path) -> None:
    """Load ``<role>.<param>`` tensors into ``modules`` strictly; EdgegenError if anything is off."""
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise EdgegenError(f"corrupt or unreadable checkpoint {weights}: {e}") from None
    for role, m in modules.items():
        state = {k[len(role) + 1:]: v for k, v in tensors.items() if k.startswith(role + ".")}
        try:
            m.load_state_dict(state, strict=True)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0]
            raise EdgegenError(f"checkpoint {weights} does not match the {role} network: {first}") from None
        m.eval()


def load_run(path: Path) -> Run:
    path = Path(path)
    meta, cfg = load_run_config(path)
    weights = path / WEIGHTS
    if not weights.is_file():
        raise EdgegenError(f"missing checkpoint {weights}")
    family = get_family(meta["family"])
    modules = family.build(cfg)
    load_state(modules, weights)
    return Run(path, meta["family"], cfg, modules, meta.get("stats", {}))


def train_run(family_name: str, cfg, out: Path, progress: bool = True) -> Path:
    """Train with the shared loop and write the run folder (rank 0 only under torchrun)."""
    from edgegen.train.loop import barrier, is_main_process
    family = get_family(family_name)
    modules, stats = family.train(cfg, progress=progress)
    if is_main_process():
        save_run(out, family_name, cfg, modules, stats)
    barrier()
    return Path(out)
