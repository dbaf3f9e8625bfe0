"""Structural validation of a Core ML package (all that Linux allows: no prediction here).

Loads the package's spec, checks input/output names, shapes and dtypes against the role's
manifest spec at the package's static batch, counts the ML program's ops, and flags the ops
that would fall off the Neural Engine. The Neural Engine computes in fp16 only, so an fp32
package runs on CPU/GPU as a whole; in an fp16 package the flagged ops are the ones
listed in ``OFF_ANE_OPS``. That list is a heuristic (Apple publishes no per-op list; sources:
coremltools' MIL op docs and hollance/neural-engine docs/unsupported-layers.md); on macOS
``MLComputePlan`` reports the real placement (coreml_backend.compute_plan).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from edgegen.roles import RoleSpec

# Core ML feature dtypes; Core ML has no int64 inputs, so int64 roles take int32 (the backend casts).
ARRAY_DTYPES = {65568: "float32", 65552: "float16", 131104: "int32", 65600: "float64"}
COMPATIBLE = {"int64": {"int32"}, "float32": {"float32"}, "float16": {"float16"}, "int32": {"int32"}}
# MIL ops that run on CPU/GPU rather than the Neural Engine (integer indexing, control flow,
# data-dependent shapes, sorting, randomness). Ops on int32 tensors go to the CPU as well.
OFF_ANE_OPS = frozenset({
    "gather", "gather_nd", "gather_along_axis", "scatter", "scatter_nd", "scatter_along_axis",
    "while_loop", "cond", "non_zero", "non_maximum_suppression", "argsort", "topk", "cumsum",
    "random_normal", "random_uniform", "random_bernoulli", "random_categorical", "band_part",
    "select", "greater_equal", "greater", "less", "less_equal", "equal", "not_equal",
    "logical_and", "logical_or", "logical_not", "round", "floor_div", "mod",
})
NOT_COUNTED = {"const"}


def op_counts(spec) -> Counter:
    counts: Counter = Counter()
    for fn in spec.mlProgram.functions.values():
        for block in fn.block_specializations.values():
            for op in block.operations:
                counts[op.type] += 1
    return counts


def _feature(f) -> tuple[tuple[int, ...], str]:
    t = f.type.multiArrayType
    return tuple(int(d) for d in t.shape), ARRAY_DTYPES.get(t.dataType, f"type {t.dataType}")


def validate(package: Path, spec: RoleSpec, batch: int, precision: str) -> dict:
    """Check one package against the role spec; ``passed`` when names, shapes and dtypes agree."""
    import coremltools as ct
    mspec = ct.utils.load_spec(str(package))
    problems = []
    for kind, want, got in (("input", spec.inputs, mspec.description.input),
                            ("output", spec.outputs, mspec.description.output)):
        got = {f.name: _feature(f) for f in got}
        if sorted(got) != sorted(t.name for t in want):
            problems.append(f"{kind} names {sorted(got)} != manifest {sorted(t.name for t in want)}")
            continue
        for t in want:
            shape, dtype = got[t.name]
            if shape != t.concrete(batch):
                problems.append(f"{kind} {t.name} shape {list(shape)} != {list(t.concrete(batch))}")
            if dtype not in COMPATIBLE.get(t.dtype, {t.dtype}):
                problems.append(f"{kind} {t.name} dtype {dtype} does not carry manifest {t.dtype}")
    if not mspec.HasField("mlProgram"):
        problems.append("not an ML program")
    counts = op_counts(mspec) if mspec.HasField("mlProgram") else Counter()
    compute = {k: v for k, v in counts.items() if k not in NOT_COUNTED}
    off = {k: v for k, v in sorted(compute.items()) if k in OFF_ANE_OPS}
    if precision == "fp32":  # the Neural Engine has no fp32 arithmetic
        ane = "none: fp32 compute runs on CPU/GPU"
    elif off:
        ane = f"{sum(compute.values()) - sum(off.values())} of {sum(compute.values())} ops"
    else:
        ane = "all ops"
    passed = not problems
    summary = (f"b{batch}: {sum(compute.values())} ops, Neural Engine {ane}" if passed
               else f"b{batch}: " + "; ".join(problems))
    return {"check": "structural", "passed": passed, "batch": batch, "precision": precision,
            "spec_version": int(mspec.specificationVersion), "ops": sum(compute.values()),
            "op_counts": dict(sorted(compute.items())), "off_neural_engine": off,
            "neural_engine": ane, "problems": problems, "summary": summary}
