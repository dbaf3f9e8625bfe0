"""A sampler plan's whole trajectory as one ONNX graph (run by runtimes/fused_executor.py).

Why hand-written: no tool exports a diffusion sampler loop as one graph from data. The graph
is built from the compiled plan itself, never from schedule math: the plan's ops run through
the one reference implementation, ``plan_ops.apply_op``, with an ``ArrayOps`` whose arrays are
ONNX tensors (``_Sym``), so every affine op becomes Mul/Add nodes summed left to right in float32
as in numpy, ``clip`` a Clip node, ``blend`` M * A + (1 - M) * B. Each plan step inlines the
denoiser's nodes once (its initializers are shared, so the file is the network's size plus the
plan's constants): the plan is unrolled, which suits short plans (DDIM-10/25, DPM-Solver++ 10).

Inputs: ``noise`` (draws, B, *sample shape), every Philox draw of the batch in the interpreter's
order (fused_executor.batch_noise), so the Philox stream is the host loop's; ``y`` (B,) labels.
Output: ``samples``. Not supported (refused in one line): langevin ops (the SDE corrector's
per-sample norms), plan input registers (image-to-image), registers not shaped like the sample,
and classifier-free guidance != 1.

``gate`` checks a fused graph against the host loop (the Python interpreter on onnxruntime) at
1e-4 max abs; ``add_to_bundle`` writes graphs for named plans into a bundle (format ``fused``).
"""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Optional

import numpy as np

from edgegen.errors import EdgegenError
from edgegen.manifest import MANIFEST, Manifest, file_entry, read_manifest
from edgegen.paths import atomic_dir, atomic_write_text
from edgegen.runtimes.fused_executor import LABELS, NOISE, OUTPUT, noise_registers, plan_digest
from edgegen.runtimes.plan_ops import ArrayOps, apply_op
from edgegen.runtimes.plans import Plan

GATE_TOLERANCE = 1e-4  # max abs against the host loop, fp32
MAX_STEPS = 200  # unrolled: each step copies the network's nodes


class _Graph:
    """Nodes and constants being written; names are unique by a counter."""

    def __init__(self):
        from onnx import helper, numpy_helper
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.inits, self._consts, self._n = [], [], {}, 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"plan/{hint}_{self._n}"

    def node(self, op: str, inputs: list[str], hint: str, **attrs) -> str:
        out = self.name(hint)
        self.nodes.append(self.helper.make_node(op, inputs, [out], name=out + "/node", **attrs))
        return out

    def const(self, value, dtype=np.float32) -> str:
        arr = np.asarray(value, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:
            name = self.name("c")
            self.inits.append(self.numpy_helper.from_array(arr, name))
            self._consts[key] = name
        return self._consts[key]


class _Sym:
    """A float32 tensor of the graph under construction, with the arithmetic apply_op uses."""

    def __init__(self, g: _Graph, name: str):
        self.g, self.name = g, name

    def _bin(self, op: str, other, swap: bool = False) -> "_Sym":
        o = other.name if isinstance(other, _Sym) else self.g.const(other)
        a, b = (o, self.name) if swap else (self.name, o)
        return _Sym(self.g, self.g.node(op, [a, b], op.lower()))

    def __mul__(self, other):
        return self._bin("Mul", other)

    def __rmul__(self, other):
        return self._bin("Mul", other, swap=True)

    def __add__(self, other):
        return self._bin("Add", other)

    def __radd__(self, other):
        return self._bin("Add", other, swap=True)

    def __sub__(self, other):
        return self._bin("Sub", other)

    def __rsub__(self, other):
        return self._bin("Sub", other, swap=True)


class OnnxOps(ArrayOps):
    """plan_ops on graph tensors: a float32 scalar is a constant, clip a Clip node."""

    def __init__(self, g: _Graph):
        self.g = g

    def scalar(self, c: float) -> _Sym:
        return _Sym(self.g, self.g.const(np.float32(c)))

    def clip(self, a: _Sym, lo: float, hi: float) -> _Sym:
        return _Sym(self.g, self.g.node("Clip", [a.name, self.g.const(np.float32(lo)), self.g.const(np.float32(hi))],
                                        "clip"))

    def row_norms(self, a):  # refused before building (fusable_reason); here for completeness
        raise EdgegenError("the fused graph has no langevin op")


def fusable_reason(plan: Plan, sample_shape: tuple) -> Optional[str]:
    """Why ``plan`` cannot become one graph (None when it can)."""
    ops = list(plan.init) + [op for s in plan.steps for op in s["ops"]]
    if any(op["op"] == "langevin" for op in ops):
        return "its langevin corrector op (per-sample norms) is not in the fused graph"
    if plan.inputs:
        return "it takes input registers (image-to-image, inpainting)"
    if any(list(plan.shapes.get(r, sample_shape)) != list(sample_shape) for r in (plan.shapes or {})):
        return "it has registers not shaped like the sample"
    if any(s["t"] is None for s in plan.steps):
        return "a step calls a network without a time input"
    if len(plan.steps) > MAX_STEPS:
        return f"it has {len(plan.steps)} steps; the graph is unrolled (at most {MAX_STEPS})"
    return None


def build(onnx_path: Path, spec, plan: Plan, sample_shape: tuple):
    """The fused ONNX model of ``plan`` over the role's ONNX network (spec: its RoleSpec)."""
    import onnx
    from onnx import TensorProto, helper
    reason = fusable_reason(plan, tuple(sample_shape))
    if reason:
        raise EdgegenError(f"plan {plan.key} cannot be fused: {reason}")
    net = onnx.load(str(onnx_path))
    meta = spec.meta or {}
    t_name, y_name = meta.get("time_input"), meta.get("label_input")
    x_name = next(t.name for t in spec.inputs if t.name not in (t_name, y_name))
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in net.graph.node
           for a in n.attribute) or net.functions:
        raise EdgegenError("the network has control flow or local functions: the fused graph inlines plain nodes only")
    g = _Graph()
    weights = {i.name for i in net.graph.initializer}
    g.inits.extend(net.graph.initializer)
    ops = OnnxOps(g)
    batch = g.node("Shape", [LABELS], "batch", start=0, end=1)  # (1,) int64: B
    draw = iter(range(10**9))

    def noise(register: str) -> _Sym:  # the next draw, (B, *sample shape)
        k = next(draw)
        return _Sym(g, g.node("Gather", [NOISE, g.const(np.int64(k), np.int64)], "noise", axis=0))

    times: dict[float, str] = {}

    def time_input(t: float) -> str:
        if t not in times:
            times[t] = g.node("Expand", [g.const(np.array([t], np.float32)), batch], "t")
        return times[t]

    def call(i: int, x: _Sym, t: float) -> _Sym:
        """The network's nodes once more, its tensors renamed for step i (weights shared)."""
        rename = {x_name: x.name, y_name: LABELS}
        if t_name:
            rename[t_name] = time_input(t)
        for n in net.graph.node:
            node = copy.deepcopy(n)
            node.name = f"step{i}/{n.name}"
            node.input[:] = [rename.get(v, v if v in weights or v == "" else f"step{i}/{v}") for v in n.input]
            node.output[:] = [f"step{i}/{v}" if v else v for v in n.output]
            g.nodes.append(node)
        return _Sym(g, f"step{i}/{net.graph.output[0].name}")

    regs: dict = {}
    for op in plan.init:
        apply_op(op, regs, noise, ops)
    for i, step in enumerate(plan.steps):
        regs[step["dst"]] = call(i, regs[step["src"]], float(step["t"]))
        for op in step["ops"]:
            apply_op(op, regs, noise, ops)
    g.nodes.append(helper.make_node("Identity", [regs[plan.output].name], [OUTPUT], name="plan/output"))
    draws = len(noise_registers(plan))
    dims = [int(d) for d in sample_shape]
    graph = helper.make_graph(
        g.nodes, f"fused_{plan.key}",
        [helper.make_tensor_value_info(NOISE, TensorProto.FLOAT, [draws, "batch", *dims]),
         helper.make_tensor_value_info(LABELS, TensorProto.INT64, ["batch"])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", *dims])], g.inits)
    model = helper.make_model(graph, opset_imports=list(net.opset_import), producer_name="edgegen.fused_export")
    model.ir_version = net.ir_version
    helper.set_model_props(model, {"edgegen.plan": plan.key, "edgegen.plan_digest": plan_digest(plan),
                                   "edgegen.noise_draws": str(draws)})
    onnx.checker.check_model(model)
    return model


def write(manifest: Manifest, plan: Plan, out: Path) -> dict:
    """Build the fused graph of ``plan`` over the generator role's fp32 ONNX and save it to ``out``."""
    import onnx
    role = manifest.generator["role"]
    model = build(manifest.file(role, "onnx", "fp32"), manifest.role(role), plan,
                  tuple(manifest.generator.get("latent_shape") or manifest.sample_shape))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    onnx.save(model, str(tmp))
    tmp.replace(out)
    return {"plan": plan.key, "digest": plan_digest(plan), "steps": len(plan.steps),
            "nodes": len(model.graph.node), "bytes": out.stat().st_size}


def gate(manifest: Manifest, plan_options: dict, graph: Path, engine: str = "onnxruntime", n: int = 4,
         seed: int = 1234, batch_size: int = 4, threads: int = 0) -> dict:
    """Max abs difference of the fused graph's samples against the host loop (the interpreter on
    onnxruntime fp32) for the same seed and labels; passed when within GATE_TOLERANCE."""
    from edgegen.runtimes.api import Pipeline
    from edgegen.runtimes.fused_executor import FusedBackend
    host = Pipeline(manifest, "onnxruntime", "fp32", threads=threads)
    plan = host.plan(**plan_options)
    ref = host.sample(n, seed=seed, batch_size=batch_size, **plan_options)
    backend = FusedBackend(manifest, manifest.generator["role"], engine=engine, graph=graph,
                           digest=plan_digest(plan), plan=plan.key, threads=threads)
    fused = Pipeline(manifest, backend).sample(n, seed=seed, batch_size=batch_size, **plan_options)
    diff = float(np.abs(fused.astype(np.float64) - ref).max())
    return {"plan": plan.key, "engine": engine, "n": n, "max_abs": diff, "tolerance": GATE_TOLERANCE,
            "passed": bool(diff <= GATE_TOLERANCE)}


def add_to_bundle(bundle: Path, plans: list[dict], engines=("onnxruntime",), threads: int = 0) -> dict:
    """Write and gate the fused graphs of ``plans`` (each {"sampler", "steps", ...}) into ``bundle``
    (format ``fused``, precision fp32; replaced atomically); refuses when a gate fails."""
    bundle = Path(bundle)
    original = read_manifest(bundle, verify=True)
    role = original.generator["role"]
    from edgegen.runtimes.api import Pipeline
    report = {}
    with atomic_dir(bundle) as tmp:
        shutil.rmtree(tmp)
        shutil.copytree(bundle, tmp)
        m = Manifest(tmp, copy.deepcopy(original.data))
        entries, host = {}, Pipeline(m, "onnxruntime", "fp32")
        for options in plans:
            plan = host.plan(**options)
            rel = f"fused/{role}.{plan.key}.onnx"
            info = write(m, plan, tmp / rel)
            checks = [gate(m, options, tmp / rel, e, threads=threads) for e in engines]
            bad = [c for c in checks if not c["passed"]]
            if bad:
                raise EdgegenError(f"fused graph of {plan.key} differs from the host loop by {bad[0]['max_abs']:.2e} "
                                   f"on {bad[0]['engine']} (tolerance {GATE_TOLERANCE:g}); the bundle is unchanged")
            entries[plan.key] = {"path": rel, "digest": info["digest"], "checks": checks}
            report[plan.key] = {**info, "checks": checks}
        first = next(iter(entries.values()))["path"]
        entry = file_entry(tmp, first)
        entry["companions"] = [file_entry(tmp, e["path"]) for e in entries.values() if e["path"] != first]
        entry["plans"] = entries
        m.set_file(role, "fused", "fp32", entry)
        atomic_write_text(tmp / MANIFEST, json.dumps(m.data, indent=1))
        read_manifest(tmp, verify=True)
    return report
