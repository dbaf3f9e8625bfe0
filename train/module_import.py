"""Your own PyTorch denoiser -> an ordinary edgegen bundle (``edgegen import --module``).

The network is a ``torch.nn.Module`` class defined in one Python file (it may import installed
packages, not sibling files: the file's source is stored in the bundle so the torch backend can
rebuild it), its weights a safetensors state dict, and its sampling process a diffusers scheduler
config (runtimes/diffusers_plans.py compiles it to plans): ``prediction_type`` epsilon, v_prediction
or sample, the betas (``beta_schedule``, ``trained_betas``), the timestep spacing, or a
FlowMatchEulerDiscreteScheduler config for a velocity model.

The module's contract (role ``denoiser``):

    forward(x, t)     x (B, C, H, W) float32, t (B,) float32 the scheduler's timestep
    forward(x, t, y)  y (B,) int64 class labels, when ``num_classes`` > 0
    -> a tensor shaped like x (or a tuple / diffusers output whose first tensor / ``.sample`` is)

Python entry point::

    from edgegen.train.module_import import OwnModule, import_module
    verify = import_module(OwnModule("my_unet.py", "TinyUNet", kwargs={"width": 32}),
                           out="bundles/mine", scheduler="DDIMScheduler", shape=(1, 16, 16),
                           weights="my_unet.safetensors", num_classes=10)

The command line is the same call: ``edgegen import --module my_unet.py:TinyUNet --weights
my_unet.safetensors --scheduler DDIMScheduler --shape 1,16,16 --num-classes 10 --out bundles/mine``.

Running the file is what the user asks for when importing it. Weights are read with safetensors;
a ``torch.save`` pickle is refused unless ``trust_code`` (then read with ``torch.load(weights_only=True)``).
The source's sha256 goes on this machine's allow-list (edgegen/trust.py), so ``--backend torch``
rebuilds the network here; on another machine the torch backend refuses it until it is allow-listed
(ONNX, OpenVINO and the native runtime run the exported files and never run the source).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from edgegen import __version__
from edgegen.config import to_dict
from edgegen.errors import EdgegenError
from edgegen.export.source import ExportSource
from edgegen.manifest import SCHEMA_VERSION
from edgegen.roles import RoleSpec, TensorSpec
from edgegen.train.diffusers_family import DiffusersConfig, build
from edgegen.train.diffusers_import import load_checked, scheduler_stage

# default inference steps per default sampler (diffusers' pipeline defaults: 50; DDPM: T; LCM: 4)
DEFAULT_STEPS = {"ddpm": 1000, "lcm": 4}


@dataclass
class OwnModule:
    file: str  # a Python file that defines the class
    cls: str  # the torch.nn.Module class in it
    kwargs: dict = field(default_factory=dict)  # its constructor's keyword arguments (JSON values)


def parse_module_ref(text: str) -> OwnModule:
    """``FILE.py:CLASS`` (the CLI's --module)."""
    file, sep, cls = text.rpartition(":")
    if not sep or not file or not cls.isidentifier():
        raise EdgegenError(f"--module {text!r}: expected FILE.py:CLASS (a Python file and the torch.nn.Module "
                           f"class it defines)")
    return OwnModule(file, cls)


def parse_shape(text) -> tuple[int, int, int]:
    """``C,H,W`` (or a sequence of three ints) -> the sample shape."""
    try:
        dims = tuple(int(v) for v in (text.split(",") if isinstance(text, str) else text))
    except (TypeError, ValueError):
        dims = ()
    if len(dims) != 3 or min(dims) < 1:
        raise EdgegenError(f"sample shape {text!r}: expected C,H,W (three positive integers, e.g. 3,32,32)")
    return dims


def scheduler_config(spec, prediction_type: str | None = None) -> dict:
    """A diffusers scheduler config from a dict, a JSON string, a scheduler_config.json (or the
    folder holding it), or a bare class name (that class's defaults); ``prediction_type`` overrides."""
    from edgegen.runtimes.diffusers_schedules import SOURCE_CLASSES
    if isinstance(spec, dict):
        config = dict(spec)
    elif not isinstance(spec, (str, Path)) or not str(spec):
        raise EdgegenError("a scheduler is needed: a diffusers class name (e.g. DDIMScheduler), a "
                           "scheduler_config.json or a JSON object")
    elif str(spec) in SOURCE_CLASSES:
        config = {"_class_name": str(spec)}
    elif str(spec).lstrip().startswith("{"):
        try:
            config = json.loads(str(spec))
        except ValueError as e:
            raise EdgegenError(f"scheduler JSON does not parse: {e}") from None
    else:
        path = Path(spec)
        if path.is_dir():
            path = path / "scheduler_config.json"
        if not path.is_file():
            raise EdgegenError(f"scheduler {str(spec)!r} is neither a scheduler class ({', '.join(SOURCE_CLASSES)}) "
                               f"nor a scheduler_config.json")
        try:
            config = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise EdgegenError(f"cannot read the scheduler config {path}: {e}") from None
    if not isinstance(config, dict) or not isinstance(config.get("_class_name"), str):
        raise EdgegenError("the scheduler config needs '_class_name' (the diffusers scheduler class, e.g. DDIMScheduler)")
    if prediction_type is not None:
        config["prediction_type"] = prediction_type
    return config


def read_state(path, trust_code: bool = False) -> dict:
    """A state dict from safetensors; a pickle (torch.save) only with ``trust_code``."""
    from safetensors.torch import load_file
    path = Path(path)
    if not path.is_file():
        raise EdgegenError(f"weights file {path} does not exist")
    try:
        return load_file(str(path))
    except Exception as safetensors_error:  # not a safetensors file (the library raises several types)
        if not trust_code:
            raise EdgegenError(
                f"weights {path} are not a safetensors file ({str(safetensors_error).strip().splitlines()[0]}); "
                f"edgegen does not unpickle: save them with safetensors.torch.save_file(model.state_dict(), PATH), "
                f"or pass --trust-code to read a torch.save file you trust") from None
    try:  # the restricted unpickler (tensors and plain containers only), and only when trusted
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise EdgegenError(f"cannot read weights {path}: {(str(e).strip().splitlines() or [''])[0]}") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):  # a training checkpoint
        obj = obj["state_dict"]
    if not (isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values())):
        raise EdgegenError(f"weights {path} hold no state dict (a dict of tensors, or one under 'state_dict')")
    return obj


def own_roles(shape, num_classes: int = 0) -> dict[str, RoleSpec]:
    c, h, w = shape
    inputs = [TensorSpec("x", ("batch", c, h, w), "float32"), TensorSpec("t", ("batch",), "float32")]
    meta = {"time_input": "t"}
    if num_classes:
        inputs.append(TensorSpec("y", ("batch",), "int64"))
        meta["label_input"] = "y"
    return {"denoiser": RoleSpec(tuple(inputs), (TensorSpec("out", ("batch", c, h, w), "float32"),), meta)}


def _check_forward(module: torch.nn.Module, spec: OwnModule, shape, num_classes: int, T: int) -> None:
    """One call on a batch of 2 before anything is exported: errors and wrong shapes in one line."""
    x = torch.randn(2, *shape)
    t = torch.tensor([T - 1.0, 0.0])
    args = (x, t) + ((torch.zeros(2, dtype=torch.int64),) if num_classes else ())
    try:
        with torch.no_grad():
            out = module(*args)
    except Exception as e:  # the user's forward: one line
        call = f"{spec.cls}.forward(x {tuple(x.shape)}, t (2,)" + (", y (2,) int64)" if num_classes else ")")
        raise EdgegenError(f"{call} failed: {type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(x.shape) or not out.is_floating_point():
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise EdgegenError(f"{spec.cls}.forward must return a float tensor shaped like x {tuple(x.shape)}, got {got}")


def module_source(spec: OwnModule, scheduler, shape, weights=None, num_classes: int = 0, null_label: bool = False,
                  sampler: str | None = None, steps: int | None = None, prediction_type: str | None = None,
                  trust_code: bool = False) -> ExportSource:
    """The exporter's input for the user's module; one-line EdgegenError for anything wrong,
    before anything is written."""
    shape = parse_shape(shape)
    file = Path(spec.file)
    if not file.is_file():
        raise EdgegenError(f"module file {file} does not exist")
    try:
        source = file.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise EdgegenError(f"cannot read the module file {file}: {e}") from None
    if not isinstance(spec.kwargs, dict):
        raise EdgegenError(f"module kwargs must be a JSON object, got {spec.kwargs!r}")
    num_classes = int(num_classes or 0)
    if num_classes < 0 or (null_label and not num_classes):
        raise EdgegenError("a null label needs num_classes > 0 (the null label is index num_classes)")
    config = scheduler_config(scheduler, prediction_type)
    from edgegen.runtimes.diffusers_plans import default_sampler
    name = sampler or default_sampler(config)
    default_steps = int(steps) if steps else DEFAULT_STEPS.get(name, 50)
    extra = {"guidance": 1.0} if null_label else {}
    if name == "ddim":
        extra["eta"] = 0.0
    stage = scheduler_stage("module", config, default_steps, sampler, **extra)  # refuses bad options
    digest = hashlib.sha256(source.encode()).hexdigest()
    component = {"file": file.name, "class": spec.cls, "kwargs": spec.kwargs, "source": source, "sha256": digest,
                 "shape": list(shape), "num_classes": num_classes, "null_label": bool(null_label)}
    cfg = DiffusersConfig(pipeline="module", source=f"{file}:{spec.cls}", components={"module": component})
    modules = build(cfg, trusted=True)  # the user's own file, passed by the user: running it is the request
    denoiser = modules["denoiser"]
    if weights is not None:
        load_checked(denoiser.net, read_state(weights, trust_code), str(weights), f"class {spec.cls}")
    T = int(config.get("num_train_timesteps", 1000))
    _check_forward(denoiser, spec, shape, num_classes, T)
    params = sum(p.numel() for p in denoiser.parameters())
    data = {"schema_version": SCHEMA_VERSION, "edgegen_version": __version__, "family": "diffusers",
            "data": {"source": f"module:{file.name}:{spec.cls}", "shape": list(shape), "range": [-1.0, 1.0],
                     "layout": "NCHW", "num_classes": num_classes, "null_label": num_classes if null_label else None},
            "roles": {k: v.to_json() for k, v in own_roles(shape, num_classes).items()},
            "pipeline": {"condition": {"kind": "label" if num_classes else "none"}, "generator": stage},
            "plans": {}, "training": {"config": to_dict(cfg), "stats": {"parameters": params,
                                                                       "weights": "random (seed 0)" if weights is None
                                                                       else Path(weights).name}}}
    return ExportSource(data, modules)


def import_module(spec: OwnModule, out, scheduler, shape, weights=None, num_classes: int = 0,
                  null_label: bool = False, sampler: str | None = None, steps: int | None = None,
                  prediction_type: str | None = None, formats=("onnx", "openvino"), trust_code: bool = False,
                  progress: bool = True, recipe=None) -> dict:
    """Export the user's module to the bundle ``out`` (every format, the parity gate); returns
    verify.json. ``weights`` None: random weights (seed 0)."""
    from edgegen.export.bundle import export_bundle
    from edgegen.trust import record_built
    source = module_source(spec, scheduler, shape, weights, num_classes, null_label, sampler, steps,
                           prediction_type, trust_code)
    verify = export_bundle(source, list(formats), Path(out), progress=progress, recipe=recipe)
    comp = source.data["training"]["config"]["components"]["module"]
    record_built(comp["sha256"], f"{comp['file']}:{comp['class']} (edgegen import --module)")
    return verify
