"""What every backend adapter is: one network call on named numpy arrays.

An adapter never knows which sampler drives it (design principle 1). It is built
from a bundle manifest, a role and a precision, and it checks inputs against the
role's spec so a wrong shape fails with a clear message, not deep in a runtime.
"""
from __future__ import annotations

import importlib.util
from typing import Optional

import numpy as np

from edgegen.errors import EdgegenError
from edgegen.manifest import Manifest
from edgegen.roles import DTYPES


class Backend:
    name = "?"
    format = "?"  # the bundle format it consumes
    requires: tuple[str, ...] = ()  # Python modules the adapter imports
    extra: Optional[str] = None  # the pip extra that installs them (edgegen[extra])
    single_calls = True  # False: it only runs whole plans (its plan_executor), never one call

    def __init__(self, manifest: Manifest, role: str, precision: str = "fp32", **opts):
        self.manifest = manifest
        self.role_name = role
        self.spec = manifest.role(role)
        self.precision = precision
        self.opts = opts

    @classmethod
    def unavailable(cls) -> Optional[str]:
        """None when this backend can run here, else the reason it cannot."""
        for module in cls.requires:
            if importlib.util.find_spec(module) is None:
                hint = f" (pip install 'edgegen[{cls.extra}]')" if cls.extra else ""
                return f"the Python package '{module}' is not installed{hint}"
        return None

    def plan_executor(self):
        """The executor that runs whole plans over this backend (executors.py); None: the Python
        plan interpreter over ``run``."""
        return None

    def pipeline_executor(self):
        """The executor that runs a whole sample request, every stage (``sample_pipeline``, see
        backends/native_backend.py); None: the Pipeline runs the stages over its backends."""
        return None

    def token_executor(self):
        """The executor that runs the whole token loop over this backend (``generate_tokens``, see
        backends/native_backend.py); None: the Python loop (tokens.py) over ``run``."""
        return None

    def prepare(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Check names, ranks and dtypes against the role spec; return contiguous arrays."""
        out = {}
        for t in self.spec.inputs:
            if t.name not in inputs:
                raise EdgegenError(f"{self.role_name}: missing input '{t.name}'")
            a = np.ascontiguousarray(inputs[t.name], dtype=DTYPES[t.dtype])
            batch = a.shape[0] if a.ndim else 0
            want = t.concrete(batch)  # -1 for dynamic dims other than the batch
            if a.ndim != len(want) or any(w >= 0 and w != n for w, n in zip(want, a.shape)):
                raise EdgegenError(f"{self.role_name}: input '{t.name}' has shape {a.shape}, "
                                   f"expected {list(t.shape)}")
            out[t.name] = a
        return out

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        pass
