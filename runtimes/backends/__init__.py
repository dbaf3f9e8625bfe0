"""Backend registry: name -> adapter class, imported lazily so a missing runtime
only matters when it is asked for."""
from __future__ import annotations

import importlib

from edgegen.errors import EdgegenError

BACKENDS = {
    "torch": ("edgegen.runtimes.backends.torch_backend", "TorchBackend"),
    "onnxruntime": ("edgegen.runtimes.backends.onnxruntime_backend", "OnnxRuntimeBackend"),
    "openvino": ("edgegen.runtimes.backends.openvino_backend", "OpenVINOBackend"),
    "native": ("edgegen.runtimes.backends.native_backend", "NativeBackend"),
    "torch-aoti": ("edgegen.runtimes.backends.aoti_backend", "AOTIBackend"),
    "coreml": ("edgegen.runtimes.backends.coreml_backend", "CoreMLBackend"),
    "tensorrt": ("edgegen.runtimes.backends.tensorrt_backend", "TensorRTBackend"),
}
ALIASES = {"ort": "onnxruntime", "ov": "openvino", "pytorch": "torch", "aoti": "torch-aoti", "trt": "tensorrt"}


def backend_class(name: str):
    key = ALIASES.get(name, name)
    if key not in BACKENDS:
        raise EdgegenError(f"unknown backend '{name}' (choose {', '.join(BACKENDS)})")
    module, cls = BACKENDS[key]
    return getattr(importlib.import_module(module), cls)


def available_backends() -> dict[str, str | None]:
    """name -> None if it can run here, else the reason it cannot."""
    out = {}
    for name in BACKENDS:
        try:
            out[name] = backend_class(name).unavailable()
        except ImportError as e:
            out[name] = str(e)
    return out


def create_backend(name: str, manifest, role: str, precision: str = "fp32", **opts):
    cls = backend_class(name)
    reason = cls.unavailable()
    if reason:
        raise EdgegenError(f"backend '{name}' cannot run here: {reason}")
    return cls(manifest, role, precision, **opts)
