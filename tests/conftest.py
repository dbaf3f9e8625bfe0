"""Shared pytest fixtures."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def evaluator_cache(tmp_path_factory) -> Path:
    """A cache root for the digit evaluator, private to this test session."""
    return tmp_path_factory.mktemp("evaluator-cache")


@pytest.fixture(scope="session")
def evaluator(evaluator_cache):
    """The digit evaluator, trained once per test session (about 10 s on the CPU)."""
    from edgegen.train.evaluator import get_evaluator

    return get_evaluator(evaluator_cache, progress=False)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The tiny DDPM preset trained once per test session (a few seconds)."""
    from edgegen.train.families import get_preset
    from edgegen.train.runs import train_run

    return train_run("ddpm", get_preset("ddpm", "tiny"), tmp_path_factory.mktemp("runs") / "ddpm-tiny",
                     progress=False)


@pytest.fixture(scope="session")
def tiny_bundle(tiny_run, tmp_path_factory) -> Path:
    """tiny_run exported to ONNX and OpenVINO through the parity gate."""
    from edgegen.train.runs import export_run as export_bundle

    out = tmp_path_factory.mktemp("bundles") / "ddpm-tiny"
    export_bundle(tiny_run, ["onnx", "openvino"], out, progress=False)
    return out


def tiny_family_bundle(name: str, tmp_path_factory) -> Path:
    """A family's tiny preset trained and exported to ONNX and OpenVINO (seconds)."""
    from edgegen.train.families import get_preset
    from edgegen.train.runs import export_run, train_run
    run = train_run(name, get_preset(name, "tiny"), tmp_path_factory.mktemp("runs") / f"{name}-tiny", progress=False)
    out = tmp_path_factory.mktemp("bundles") / f"{name}-tiny"
    export_run(run, ["onnx", "openvino"], out, progress=False)
    return out


@pytest.fixture(scope="session")
def family_bundle(tmp_path_factory):
    """family name -> its tiny bundle, each trained and exported once per session."""
    made: dict = {}

    def get(name: str) -> Path:
        if name not in made:
            made[name] = tiny_family_bundle(name, tmp_path_factory)
        return made[name]
    return get


@pytest.fixture(scope="session")
def vq_bundle(tmp_path_factory):
    return tiny_family_bundle("vqvae", tmp_path_factory)


@pytest.fixture(scope="session")
def dalle_bundle(tmp_path_factory):
    return tiny_family_bundle("dalle", tmp_path_factory)
