"""Summary statistics for latency samples."""
from __future__ import annotations

import numpy as np


def summary(values, scale: float = 1.0) -> dict:
    """p50/p90/p99/mean/min/max of ``values`` (multiplied by ``scale``) and the count."""
    a = np.asarray(values, dtype=np.float64) * scale
    if a.size == 0:
        return {"n": 0}
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(a.mean()),
            "min": float(a.min()), "max": float(a.max()), "n": int(a.size)}
