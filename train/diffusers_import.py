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
from edgegen.manifest import SCHEMA_VERSION
from edgegen.roles import RoleSpec, TensorSpec
from edgegen.train.diffusers_family import DiffusersConfig, build

# pipeline class -> (its components: name -> the diffusers class it must be, default steps, default options)
PIXEL_PIPELINES = {"DDPMPipeline": 1000, "DDIMPipeline": 50}
PIPELINES = tuple(PIXEL_PIPELINES)
WEIGHTS = "diffusion_pytorch_model.safetensors"

# UNet2DModel options whose values edgegen does not support (the rest of its options are plain
# architecture: block types, widths, norms, attention, which the exporter handles as any module).
UNET_CHOICES = {"time_embedding_type": ("positional",), "class_embed_type": (None,)}


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
    known = set(inspect.signature(getattr(diffusers, cls_name).__init__).parameters) - {"self"}
    unknown = sorted(k for k in config if not k.startswith("_") and k not in known)
    if unknown:
        raise EdgegenError(f"unsupported {cls_name} config option(s) {', '.join(unknown)} (not known to "
                           f"diffusers {diffusers.__version__})")
    for key, allowed in choices.items():
        if config.get(key) not in allowed:
            raise EdgegenError(f"unsupported {cls_name} option {key}={config.get(key)!r} (supported: "
                               f"{', '.join(repr(a) for a in allowed)})")


def load_weights(module: torch.nn.Module, folder: Path, name: str) -> None:
    """The component's safetensors weights into ``module``, every name and shape checked."""
    from safetensors.torch import load_file
    single, sharded = folder / WEIGHTS, folder / (WEIGHTS + ".index.json")
    if single.is_file():
        state = load_file(str(single))
    elif sharded.is_file():
        files = sorted(set(_read_json(sharded, f"component {name}").get("weight_map", {}).values()))
        state = {}
        for f in files:
            state.update(load_file(str(folder / f)))
    else:
        found = sorted(p.name for p in folder.glob("diffusion_pytorch_model*"))
        raise EdgegenError(f"component {name}: no {WEIGHTS} in {folder}" + (
            f" (found {', '.join(found)}: edgegen reads safetensors only; save with safe_serialization=True)"
            if found else ""))
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or extra or wrong:
        parts = []
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} with another shape (e.g. {k}: {list(state[k].shape)} in the file, "
                         f"{list(own[k].shape)} from the config)")
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if extra:
            parts.append(f"{len(extra)} not in the config (e.g. {extra[0]})")
        raise EdgegenError(f"component {name}: weights do not match its config: {'; '.join(parts)}")
    module.load_state_dict({k: v.float() for k, v in state.items()})


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


def scheduler_stage(pipeline: str, scheduler: dict, default_steps: int, **defaults) -> dict:
    """The generator stage of process ``diffusers``: the pipeline's scheduler and its defaults."""
    from edgegen.runtimes.diffusers_plans import default_sampler
    from edgegen.runtimes.diffusers_schedules import FLOW_CLASSES
    from edgegen.runtimes.samplers import compile_plan, samplers
    sampler = "ddim" if pipeline == "DDIMPipeline" else default_sampler(scheduler)  # DDIMPipeline converts to DDIM
    flow = scheduler.get("_class_name") in FLOW_CLASSES
    names = [s for s in samplers("diffusers") if (s == "flow_euler") == flow]
    T = int(scheduler.get("num_train_timesteps", 1000))
    steps = min(default_steps, T) if sampler in ("ddpm", "ddim") else default_steps
    stage = {"kind": "plan", "role": "denoiser", "process": "diffusers", "scheduler": scheduler,
             "defaults": {"sampler": sampler, "steps": steps, **defaults}, "samplers": names,
             # the parity gate's trajectory: the default sampler, at most 50 steps
             "gate": {"sampler": sampler, "steps": min(steps, 50)}}
    compile_plan(stage)  # every scheduler option is checked now: refused in one line before anything is written
    return stage


def _pixel_source(path: Path, index: dict):
    from edgegen.export.source import ExportSource
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
    stage = scheduler_stage(pipeline, sched_cfg, PIXEL_PIPELINES[pipeline], **extra)
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


def _scheduler_classes() -> tuple[str, ...]:
    from edgegen.runtimes.diffusers_schedules import SOURCE_CLASSES
    return tuple(SOURCE_CLASSES)


def import_source(path) -> "ExportSource":  # noqa: F821
    """A diffusers pipeline folder as the exporter's input; one-line EdgegenError for anything
    edgegen does not support (nothing is written)."""
    path = Path(path)
    index = read_index(path)
    with torch.no_grad():
        return _pixel_source(path, index)


def import_pipeline(path, out, formats=("onnx", "openvino"), progress: bool = True, recipe=None) -> dict:
    """Import a diffusers pipeline folder and export it to the bundle ``out``; returns verify.json."""
    from edgegen.export.bundle import export_bundle
    source = import_source(path)
    return export_bundle(source, list(formats), Path(out), progress=progress, recipe=recipe)
