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
from edgegen.export.bundle import role_tensors
from edgegen.manifest import SCHEMA_VERSION, Manifest, file_entry, pipeline_from_sampling
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


def pipeline_info(family, cfg) -> dict:
    """The family's stages (manifest ``pipeline``): its own ``pipeline_info`` when it has one, else
    built from its one-section ``sampling_info`` (how the first six families describe themselves)."""
    if hasattr(family, "pipeline_info"):
        return family.pipeline_info(cfg)
    return pipeline_from_sampling(family.sampling_info(cfg), int(family.data_info(cfg).get("num_classes", 0)))


def manifest_from_run(run_path: Path) -> Manifest:
    """An in-memory manifest for a training run: its torch weights are the only format. This is
    how a run folder reaches the runtime, which never reads run folders itself."""
    meta, cfg = load_run_config(run_path)
    family = get_family(meta["family"])
    if not (Path(run_path) / WEIGHTS).is_file():
        raise EdgegenError(f"missing checkpoint {Path(run_path) / WEIGHTS}")
    weights = file_entry(Path(run_path), WEIGHTS)
    roles = {name: {**spec.to_json(), "files": {"torch": {"fp32": weights}}}
             for name, spec in family.roles(cfg).items()}
    data = {"schema_version": SCHEMA_VERSION, "edgegen_version": __version__, "family": meta["family"],
            "data": family.data_info(cfg), "roles": roles, "pipeline": pipeline_info(family, cfg),
            "plans": {}, "training": {"config": to_dict(cfg), "stats": meta.get("stats", {})}}
    return Manifest(Path(run_path), data)


def open_source(path, verify: bool = True) -> Manifest:
    """A bundle folder (manifest.json) or a training run folder (config.json), for the CLI."""
    from edgegen.runtimes.pipeline import open_manifest
    path = Path(path)
    if path.exists() and is_run(path):
        return manifest_from_run(path)
    return open_manifest(path, verify=verify)


def export_source(run_path: Path):
    """A training run as the exporter's input (export/source.py): its manifest, networks, side
    files (a text family's tokenizer.json) and a few real test images for the parity gate."""
    from edgegen.export.source import ExportSource
    run = load_run(run_path)
    data = manifest_from_run(run_path).data
    for role in data["roles"].values():
        role.pop("files", None)
    tok = (data["pipeline"].get("condition") or {}).get("tokenizer")
    files = {"tokenizer": Path(run_path) / tok["file"]} if tok else {}
    from edgegen.train.static_kv import add_static_kv
    modules = dict(run.modules)
    add_static_kv(data, modules)  # token models: the static-shape step roles beside the dynamic one
    return ExportSource(data, modules, files, _real_images(data["data"]))


def _real_images(d: dict):
    """16 test images of the run's data set (the parity gate's data call), None when unavailable."""
    if len(d.get("shape", [])) != 3:
        return None
    from edgegen.train.data import load_images
    try:
        return load_images(d["source"], "test", d["shape"][-1], d["shape"][0]).images[:16]
    except Exception:  # a user folder that moved: the random-input call still gates
        return None


def export_run(run_path: Path, formats, out: Path, progress: bool = True, recipe=None) -> dict:
    """Export a training run to a bundle (export_bundle on its export_source)."""
    from edgegen.export.bundle import export_bundle
    return export_bundle(export_source(run_path), list(formats), out, progress=progress, recipe=recipe)
