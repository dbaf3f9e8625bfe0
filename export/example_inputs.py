"""Random inputs that match a role's spec, for tracing and for the parity gate."""
from __future__ import annotations

import numpy as np

from edgegen.roles import RoleSpec


def example_inputs(spec: RoleSpec, batch: int, seed: int = 0, num_classes: int = 0,
                   time_range: tuple[float, float] = (0.0, 1000.0)) -> dict[str, np.ndarray]:
    """x ~ N(0, 1); the time input uniform in ``time_range``; labels in [0, num_classes]
    (num_classes is the null label); any other int input uniform in [0, 2)."""
    g = np.random.default_rng(seed)
    meta = spec.meta or {}
    out = {}
    for t in spec.inputs:
        shape = t.concrete(batch, **meta.get("example_dims", {}))  # e.g. {"seq": 5, "past": 3}
        if t.name == meta.get("time_input"):
            out[t.name] = g.uniform(*time_range, size=shape).astype(np.float32)
        elif t.name == meta.get("label_input"):
            out[t.name] = g.integers(0, num_classes + 1, size=shape).astype(t.dtype)
        elif t.dtype.startswith("float"):
            out[t.name] = g.standard_normal(shape).astype(t.dtype)
        else:
            out[t.name] = g.integers(0, 2, size=shape).astype(t.dtype)
    return out
