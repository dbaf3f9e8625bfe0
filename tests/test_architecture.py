"""ARCHITECTURE.md's worked examples run as written, through the registries they describe."""
import re
from pathlib import Path

import numpy as np
import pytest

from edgegen.cli import main
from edgegen.errors import EdgegenError
from edgegen.runtimes.api import open_pipeline
from edgegen.runtimes.samplers import compile_plan, samplers

DOC = Path(__file__).resolve().parents[1] / "ARCHITECTURE.md"


def example(name: str) -> dict:
    """Execute the ```python example:NAME block of ARCHITECTURE.md; returns its namespace."""
    m = re.search(rf"```python example:{name}\n(.*?)```", DOC.read_text(), re.S)
    assert m, f"ARCHITECTURE.md has no example:{name} block"
    ns: dict = {"__name__": f"architecture_example_{name}"}
    exec(compile(m.group(1), f"ARCHITECTURE.md:{name}", "exec"), ns)
    return ns


def test_toy_sampler_through_the_registry(tiny_bundle, tmp_path, capsys):
    ns = example("sampler")
    assert "toy_halfway" in samplers("ddpm")
    gen = {"process": "ddpm", "schedule": {"kind": "linear", "T": 1000}, "defaults": {"sampler": "ddim"}}
    plan = compile_plan(gen, "toy_halfway", 20, fraction=0.25)
    assert plan.params == {"steps": 5, "fraction": 0.25} and len(plan.steps) == 5
    assert plan.key == ns["compile_halfway"](gen, 20, ns["HalfwayOptions"](0.25)).key
    # an option it does not have: one line naming the sampler's options
    with pytest.raises(EdgegenError, match=r"option 'eta' does not apply to sampler 'toy_halfway' \(its options: fraction\)"):
        compile_plan(gen, "toy_halfway", 20, eta=0.5)
    # every backend runs it: same samples on onnxruntime and openvino, clipped x0 in range
    a = open_pipeline(tiny_bundle, "onnxruntime").sample(6, seed=3, sampler="toy_halfway", steps=20, fraction=0.5)
    b = open_pipeline(tiny_bundle, "openvino").sample(6, seed=3, sampler="toy_halfway", steps=20, fraction=0.5)
    assert a.shape == (6, 1, 16, 16) and np.abs(a).max() <= 1.0
    assert np.max(np.abs(a - b)) < 1e-4
    # the CLI reads sampler names and options from the registry
    out = tmp_path / "toy.png"
    assert main(["sample", str(tiny_bundle), "--sampler", "toy_halfway", "--steps", "8", "--n", "3",
                 "--out", str(out), "--quiet"]) == 0
    assert np.load(out.with_suffix(".npy")).shape == (3, 1, 16, 16)


def test_inapplicable_option_is_exit_2(tiny_bundle, tmp_path, capsys):
    out = tmp_path / "s.png"
    assert main(["sample", str(tiny_bundle), "--sampler", "ddim", "--snr", "0.3", "--n", "2", "--out", str(out),
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("edgegen: error: option 'snr' does not apply to sampler 'ddim' (its options: eta, clip_x0)")
    assert not out.exists() and not out.with_suffix(".npy").exists()


def test_backend_example_registers_and_runs(tiny_bundle):
    ns = example("backend")
    pipe = open_pipeline(tiny_bundle, "counting")
    x = pipe.sample(2, seed=0, steps=5)
    ref = open_pipeline(tiny_bundle, "onnxruntime").sample(2, seed=0, steps=5)
    assert ns["CountingBackend"].calls == 5 and np.array_equal(x, ref)
