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
