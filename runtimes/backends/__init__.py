"""Backend registry: name -> adapter class, imported lazily so a missing runtime only matters
when it is asked for.

Built-in adapters are listed here. Others come from the ``edgegen.backends`` entry-point group
(pyproject.toml): the eager ``torch`` backend is one, since it rebuilds networks with the
training code the runtime never imports; an app or plugin package registers its own the same way,
and ``register_backend`` adds one at run time (tests, notebooks). A backend whose Python
packages are missing is refused with one line naming the extra that installs them.
"""
from __future__ import annotations

import importlib
import importlib.metadata
from typing import Optional

from edgegen.errors import EdgegenError

BACKENDS = {
    "onnxruntime": ("edgegen.runtimes.backends.onnxruntime_backend", "OnnxRuntimeBackend"),
    "openvino": ("edgegen.runtimes.backends.openvino_backend", "OpenVINOBackend"),
    "native": ("edgegen.runtimes.backends.native_backend", "NativeBackend"),
    "torch-aoti": ("edgegen.runtimes.backends.aoti_backend", "AOTIBackend"),
    "coreml": ("edgegen.runtimes.backends.coreml_backend", "CoreMLBackend"),
    "tensorrt": ("edgegen.runtimes.backends.tensorrt_backend", "TensorRTBackend"),
    "executorch": ("edgegen.runtimes.backends.executorch_backend", "ExecuTorchBackend"),
}
ALIASES = {"ort": "onnxruntime", "ov": "openvino", "pytorch": "torch", "aoti": "torch-aoti", "trt": "tensorrt",
           "et": "executorch"}
ENTRY_POINTS = "edgegen.backends"
_registered: dict[str, type] = {}


def register_backend(name: str, cls: type) -> None:
    """Add (or replace) a backend at run time."""
    _registered[name] = cls


def _entry_points() -> dict:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINTS)}


# reports list them so
ORDER = ("torch", "onnxruntime", "openvino", "native", "torch-aoti", "executorch", "coreml", "tensorrt")


def backend_names() -> list[str]:
    names = dict.fromkeys([*BACKENDS, *sorted(_entry_points()), *_registered])
    return sorted(names, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER))


def backend_class(name: str):
    key = ALIASES.get(name, name)
    if key in _registered:
        return _registered[key]
    if key in BACKENDS:
        module, cls = BACKENDS[key]
        return getattr(importlib.import_module(module), cls)
    eps = _entry_points()
    if key in eps:
        try:
            return eps[key].load()
        except ImportError as e:  # its module imports a package of an extra that is not installed
            extra = next(iter(eps[key].extras), None)
            hint = f": pip install 'edgegen[{extra}]'" if extra else ""
            raise EdgegenError(f"backend '{name}' needs the Python package '{e.name}'{hint}") from None
    raise EdgegenError(f"unknown backend '{name}' (choose {', '.join(backend_names())})")


def unavailable(name: str) -> Optional[str]:
    """None when backend ``name`` can run here, else the reason it cannot (one line)."""
    try:
        return backend_class(name).unavailable()
    except EdgegenError as e:
        return str(e)
    except ImportError as e:
        return str(e)


def available_backends() -> dict[str, Optional[str]]:
    """name -> None if it can run here, else the reason it cannot."""
    return {name: unavailable(name) for name in backend_names()}


def create_backend(name: str, manifest, role: str, precision: str = "fp32", **opts):
    cls = backend_class(name)
    reason = cls.unavailable()
    if reason:
        raise EdgegenError(f"backend '{name}' cannot run here: {reason}")
    return cls(manifest, role, precision, **opts)
