"""Native vs Python openvino on the other plan families: score SDE (Euler-Maruyama and the
predictor-corrector with the named langevin op and with the fixed-step corrector), flow matching (RK4), and the DCGAN's one
call (register shapes, a step with t: null). Same bundle, seed and plan; max abs error 1e-4.
"""
from __future__ import annotations

import numpy as np
import pytest

from edgegen.runtimes.api import Pipeline, open_manifest
from edgegen.runtimes.backends.native_backend import NativeBackend

REASON = NativeBackend.unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"native runtime not available: {REASON}")
TOL = 1e-4


def tiny_bundle_of(family: str, root):
    from edgegen.train.runs import export_run as export_bundle
    from edgegen.train.families import get_preset
    from edgegen.train.runs import train_run
    cfg = get_preset(family, "tiny")
    cfg.train.threads = 1
    run = train_run(family, cfg, root / f"{family}-run", progress=False)
    out = root / f"{family}-bundle"
    export_bundle(run, ["onnx", "openvino"], out, progress=False)
    return open_manifest(out)


@pytest.mark.parametrize("family, samplers", [
    ("sde", [("em", 6), ("pc", 4), ("pc", 4, {"corrector": "fixed"}), ("pf_heun", 4)]),
    ("flow", [("rk4", 4), ("euler", 5)]),
    ("gan", [("gan", None)]),
])
def test_family_parity(family, samplers, tmp_path):
    m = tiny_bundle_of(family, tmp_path)
    py, nat = Pipeline(m, "openvino"), Pipeline(m, "native")
    labels = [i % max(m.num_classes, 1) for i in range(5)] if m.num_classes else None
    for sampler, steps, *opts in samplers:
        o = opts[0] if opts else {}
        a = py.sample(5, seed=7, labels=labels, sampler=sampler, steps=steps, batch_size=3, **o)
        b = nat.sample(5, seed=7, labels=labels, sampler=sampler, steps=steps, batch_size=2, **o)
        assert a.shape == b.shape
        assert float(np.abs(a - b).max()) <= TOL, f"{family} {sampler}"
    nat.backend.close()
