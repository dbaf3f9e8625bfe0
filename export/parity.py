"""The parity gate every export passes: the exported network against PyTorch.

1. One network call on random inputs (example_inputs.py): max abs error of every output.
2. A whole trajectory (the generator's "gate" settings, else its default sampler) from the same
   seed and labels, run by the same interpreter on both backends: max abs error of the final samples.
Roles of token loops and decoders/encoders are gated by token_parity.py (KV-cache decode steps,
greedy tokens, a call on real data); ``gate_module`` picks the module from the stage objects.
Bounds are per precision; results go to BUNDLE/verify.json.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgegen.export.example_inputs import example_inputs
from edgegen.manifest import Manifest
from edgegen.runtimes.api import Pipeline
from edgegen.runtimes.backends.base import Backend

BOUNDS = {"fp32": {"single_call_max_abs": 1e-4, "trajectory_max_abs": 1e-3}}
GATE_SEED = 1234
GATE_BATCH = 4


@dataclass
class Reference:
    """What the torch reference produced, computed once and compared with every format."""
    inputs: dict
    outputs: dict
    trajectory: np.ndarray
    trajectory_kw: dict
    trajectory_key: str


def gate_module(manifest: Manifest, role: str):
    """This module for the generator role of a plan generator; token_parity for every other role."""
    from edgegen.export import token_parity
    from edgegen.runtimes.stages import PlanGenerator, generator_class
    plan_role = generator_class(manifest) is PlanGenerator and role == manifest.generator["role"]
    return None if plan_role else token_parity


def gate_trajectory(generator: dict) -> dict:
    """The sampler settings of the gate's trajectory: the generator's "gate", else its default."""
    d = generator.get("defaults", {})
    return dict(generator.get("gate") or {"sampler": d.get("sampler"), "steps": d.get("steps")})


def reference(manifest: Manifest, ref: Backend, real_images=None) -> Reference:
    other = gate_module(manifest, ref.role_name)
    if other is not None:
        return other.reference(manifest, ref, real_images)
    sch = manifest.sampling.get("schedule", {})
    # Continuous-time families give their time range; DDPM's t is an index in [0, T-1].
    time_range = tuple(manifest.sampling.get("time_range", (0.0, float(sch.get("T", 1000)) - 1.0)))
    inputs = example_inputs(ref.spec, GATE_BATCH, GATE_SEED, manifest.num_classes, time_range)
    d = manifest.sampling.get("defaults", {})
    plan_kw = gate_trajectory(manifest.generator)
    kw = dict(plan_kw, guidance=d.get("guidance", 1.0))
    pipe = Pipeline(manifest, ref)
    traj = pipe.sample(GATE_BATCH, seed=GATE_SEED, **kw)
    return Reference(inputs, ref.run(inputs), traj, kw, pipe.plan(**plan_kw).key)


def gate(manifest: Manifest, ref: Reference, other: Backend, precision: str = "fp32") -> dict:
    """Measure one exported format against the torch reference; ``passed`` against BOUNDS."""
    module = gate_module(manifest, other.role_name)
    if module is not None:
        return module.gate(manifest, ref, other, precision)
    bounds = BOUNDS[precision]
    out = other.run(ref.inputs)
    single = max(float(np.max(np.abs(ref.outputs[k].astype(np.float64) - out[k]))) for k in ref.outputs)
    traj = Pipeline(manifest, other).sample(GATE_BATCH, seed=GATE_SEED, **ref.trajectory_kw)
    drift = float(np.max(np.abs(ref.trajectory.astype(np.float64) - traj)))
    return {"backend": other.name, "precision": precision, "single_call_max_abs": single,
            "trajectory": ref.trajectory_key, "trajectory_max_abs": drift, "bounds": bounds,
            "passed": single <= bounds["single_call_max_abs"] and drift <= bounds["trajectory_max_abs"]}
