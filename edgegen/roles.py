"""What an exported network looks like from outside: named inputs and outputs.

A role (``denoiser``, ``generator``, ``decoder``, ...) is one network call. Shapes
use the string ``"batch"`` for the dynamic batch dimension.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DTYPES = {"float32": np.float32, "int64": np.int64, "int32": np.int32, "float16": np.float16}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple  # ints, "batch" for the dynamic batch dimension, other names for other dynamic dims
    dtype: str  # a key of DTYPES

    def concrete(self, batch: int, **dims: int) -> tuple[int, ...]:
        """Concrete shape; other symbolic dims (e.g. a KV cache's "past") from ``dims``, else -1."""
        return tuple(batch if d == "batch" else int(dims.get(d, -1)) if isinstance(d, str) else int(d)
                     for d in self.shape)

    def to_json(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @staticmethod
    def from_json(d: dict) -> "TensorSpec":
        return TensorSpec(d["name"], tuple(d["shape"]), d["dtype"])


@dataclass(frozen=True)
class RoleSpec:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    meta: dict = field(default_factory=dict)  # e.g. which input is the timestep

    def to_json(self) -> dict:
        return {"inputs": [t.to_json() for t in self.inputs],
                "outputs": [t.to_json() for t in self.outputs], **({"meta": self.meta} if self.meta else {})}

    @staticmethod
    def from_json(d: dict) -> "RoleSpec":
        return RoleSpec(tuple(TensorSpec.from_json(t) for t in d["inputs"]),
                        tuple(TensorSpec.from_json(t) for t in d["outputs"]), d.get("meta", {}))
