"""Fixtures of the score SDE / flow / GAN tests: train a tiny run, export it, sample on every backend."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

BACKENDS = ("torch", "onnxruntime", "openvino")


def train_tiny(family: str, out: Path, **overrides) -> Path:
    from edgegen.train.families import get_preset
    from edgegen.train.runs import train_run
    cfg = get_preset(family, overrides.pop("preset", "tiny"))
    for key, value in overrides.items():
        section, _, field = key.partition("__")
        if field:
            setattr(getattr(cfg, section), field, value)
        else:
            setattr(cfg, section, value)
    cfg.train.threads = 1
    return train_run(family, cfg, out, progress=False)


def export_and_sample_everywhere(run: Path, out: Path, n: int = 3, **sample_kw) -> tuple[dict, list[np.ndarray]]:
    """Export to ONNX + OpenVINO (parity gate), then sample the same seed on every backend
    (torch first; the native runtime too when its library is built)."""
    from edgegen.train.runs import export_run as export_bundle
    from edgegen.runtimes.api import open_pipeline
    verify = export_bundle(run, ["onnx", "openvino"], out, progress=False)
    assert verify["passed"]
    assert json.loads((out / "verify.json").read_text()) == verify
    from edgegen.runtimes.backends import available_backends
    native = ("native",) if available_backends().get("native") is None else ()  # the C++ runtime, when built
    samples = [open_pipeline(out, backend).sample(n, seed=4, **sample_kw) for backend in BACKENDS + native]
    return verify, samples


@pytest.fixture(scope="session")
def tiny_family_run():
    return train_tiny


@pytest.fixture(scope="session")
def export_everywhere():
    return export_and_sample_everywhere
