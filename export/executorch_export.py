"""ExecuTorch programs (``.pte``): PyTorch's on-device runtime for Android and iOS.

Per role: ``torch.export`` -> ``to_edge_transform_and_lower`` with the XNNPACK partitioner ->
``executorch/<role>.pte`` (fp32), gated through the ``executorch`` backend (ExecuTorch's Python
runtime, which runs XNNPACK programs on this CPU).

- Batch: ExecuTorch plans every activation at its upper bound when the program is written, so a
  dynamic batch is bounded: 1 to the recipe's largest static batch size (64 by default; the runtime
  runs bigger batches in chunks). A role whose dynamic export or lowering fails gets one program per
  static batch size instead; a role that lowers neither way is refused, with the reason recorded
  in the manifest (``export.executorch.refused``), and the rest of the bundle is still written.
- Other delegates: Core ML and Vulkan partitioned programs (``executorch/<role>.<delegate>.pte``,
  manifest precision ``coreml`` / ``vulkan``) are written where their partitioners import, and
  checked structurally (the program parses, has ``forward`` with the role's inputs and outputs, and
  calls that delegate): this runtime has neither delegate. QNN (Qualcomm) needs Qualcomm's SDK,
  which no reachable registry has: refused with that reason.
- int8 (XNNPACK's quantizer, calibrated from the bundle's calibration artifact) is written by
  ``edgegen calibrate --formats executorch`` (calibration/executorch_quant.py) with ``lower`` here.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import logging
import warnings
from typing import Optional

import torch

from edgegen.errors import EdgegenError
from edgegen.export.targets import TargetContext, other_dims, torch_dynamic_shapes
from edgegen.runtimes.backends.executorch_backend import FORMAT, import_executorch_runtime

# name -> (module, partitioner class, runtime backend id the program calls)
DELEGATES = {
    "xnnpack": ("executorch.backends.xnnpack.partition.xnnpack_partitioner", "XnnpackPartitioner", "XnnpackBackend"),
    "coreml": ("executorch.backends.apple.coreml.partition", "CoreMLPartitioner", "CoreMLBackend"),
    "vulkan": ("executorch.backends.vulkan.partitioner.vulkan_partitioner", "VulkanPartitioner", "VulkanBackend"),
}
STRUCTURAL = ("coreml", "vulkan")  # written and checked here, run on phones / GPUs
REFUSED_DELEGATES = {"qnn": "needs Qualcomm's SDK (QNN / QAIRT), which no reachable registry has: the "
                            "Qualcomm partitioner cannot lower without it"}
SKIPPED = "not asked for (export recipe executorch_delegates; edgegen export --executorch-delegates)"
OTHER_DIM_MAX = 1024  # upper bound of a non-batch dim (KV-cache length, tokens): memory is planned at it


@contextlib.contextmanager
def quiet():
    """ExecuTorch's lowering logs per partition and warns about deprecations: keep the CLI readable."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(previous)


def partitioner(name: str):
    """An instance of delegate ``name``'s partitioner; EdgegenError naming why it cannot be had."""
    if name in REFUSED_DELEGATES:
        raise EdgegenError(f"ExecuTorch {name} {REFUSED_DELEGATES[name]}")
    if name not in DELEGATES:
        raise EdgegenError(f"unknown ExecuTorch delegate '{name}' (choose {', '.join(DELEGATES)})")
    module, cls, _ = DELEGATES[name]
    try:
        with quiet():
            return getattr(importlib.import_module(module), cls)()
    except ImportError as e:
        raise EdgegenError(f"the ExecuTorch {name} partitioner does not import here "
                           f"(missing Python package '{e.name}')") from None


def dynamic_shapes(spec, max_batch: int) -> tuple:
    """torch.export dynamic shapes with the bounds ExecuTorch plans memory for, in input order (a
    module's forward() may name its arguments otherwise than the role does)."""
    shapes = torch_dynamic_shapes(spec, OTHER_DIM_MAX)
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    return tuple({i: (batch if d.__name__ == "batch" else d) for i, d in shapes[t.name].items()}
                 for t in spec.inputs)


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:300]


def lower(program: "torch.export.ExportedProgram", delegate: str = "xnnpack") -> bytes:
    """An exported program -> .pte bytes, the delegate's partitioner taking what it supports."""
    from executorch.exir import to_edge_transform_and_lower
    part = partitioner(delegate)
    with quiet():
        return to_edge_transform_and_lower(program, partitioner=[part]).to_executorch().buffer


def _split_with_sizes(x, split_sizes, dim=0):
    out, start = [], 0
    for size in split_sizes:
        out.append(torch.ops.aten.slice.Tensor(x, dim, start, start + size))
        start += size
    return out


def _split(x, split_size, dim=0):
    n = x.shape[dim]
    return [torch.ops.aten.slice.Tensor(x, dim, s, min(s + split_size, n)) for s in range(0, n, split_size)]


# split/chunk -> slices before lowering: ExecuTorch's to_edge specializes the batch of a program with
# a split (attention's ``kv(x).chunk(2, -1)``: every tensor gets the example's batch as a static size,
# and a call on fewer rows fails with "Attempted to resize a static tensor"; measured with executorch
# 1.5.1 on the LDM text encoder and denoiser), while slices keep it symbolic
SPLITS_AS_SLICES = {torch.ops.aten.split_with_sizes.default: _split_with_sizes, torch.ops.aten.split.Tensor: _split}


def export_program(module: torch.nn.Module, args: tuple, shapes: Optional[dict]):
    """``module`` in eval mode already (a quantized pt2e graph refuses ``.eval()``)."""
    with quiet(), torch.no_grad():
        program = torch.export.export(module, args, dynamic_shapes=shapes)
        if shapes is not None:
            program = program.run_decompositions(SPLITS_AS_SLICES)
        return program


def example_args(ctx: TargetContext, batch: int) -> tuple:
    example = ctx.inputs(batch)
    return tuple(torch.from_numpy(example[t.name]) for t in ctx.spec.inputs)


def build(module: torch.nn.Module, ctx: TargetContext, delegate: str, batch: Optional[int],
          max_batch: int) -> bytes:
    """One .pte of ``module``: dynamic batch up to ``max_batch`` when ``batch`` is None, else static."""
    # the example has max_batch rows: XNNPACK lowering of a convolution traced on 2 (or 5) rows
    # bounds the planned batch at 15 whatever Dim's max says (measured with executorch 1.5.1;
    # traced on 16 or more rows the bound is max_batch)
    args = example_args(ctx, batch or max_batch)
    shapes = dynamic_shapes(ctx.spec, max_batch) if batch is None else None
    if batch is not None and other_dims(ctx.spec):
        shapes = tuple({i: d for i, d in dims.items() if d.__name__ != "batch"}
                       for dims in dynamic_shapes(ctx.spec, max_batch))
    return lower(export_program(module, args, shapes), delegate)


def program_summary(data: bytes) -> dict:
    """What a .pte holds, read from its flatbuffer: methods, delegate ids, operators left outside."""
    from executorch.exir._serialize._program import deserialize_pte_binary
    with quiet():
        pte = deserialize_pte_binary(bytes(data))
    program = pte.program
    plans = {p.name: p for p in program.execution_plan}
    forward = plans.get("forward")
    if forward is None:
        return {"methods": sorted(plans), "delegates": [], "operators": [], "inputs": 0, "outputs": 0}
    first = forward.values[forward.inputs[0]].val if forward.inputs else None
    return {"methods": sorted(plans), "delegates": sorted({d.id for d in forward.delegates}),
            "delegate_calls": len(forward.delegates), "operators": sorted({o.name for o in forward.operators}),
            "inputs": len(forward.inputs), "outputs": len(forward.outputs),
            # the first input's planned shape: its leading dim is the most rows one call takes
            "planned_batch": int(first.sizes[0]) if getattr(first, "sizes", None) else None}


def structural_check(data: bytes, ctx: TargetContext, delegate: str) -> dict:
    """A program for a delegate this runtime lacks: it parses, has forward with the role's inputs and
    outputs, and calls that delegate."""
    s = program_summary(data)
    want = DELEGATES[delegate][2]
    problems = []
    if "forward" not in s["methods"]:
        problems.append("no forward method")
    if s["inputs"] != len(ctx.spec.inputs) or s["outputs"] != len(ctx.spec.outputs):
        problems.append(f"{s['inputs']} inputs / {s['outputs']} outputs, the role has "
                        f"{len(ctx.spec.inputs)} / {len(ctx.spec.outputs)}")
    if want not in s["delegates"]:
        problems.append(f"nothing delegated to {want}")
    summary = (f"{delegate}: {s.get('delegate_calls', 0)} delegate call(s), "
               f"{len(s['operators'])} portable operator(s) outside")
    return {"check": "structural", "passed": not problems, **s,
            "summary": summary + (f"; {'; '.join(problems)}" if problems else "")}


def write_pte(ctx: TargetContext, module: torch.nn.Module, delegate: str, stem: str) -> tuple[dict, bytes]:
    """Write ``executorch/<stem>.pte`` (dynamic batch), else one per static batch size; returns
    (manifest entry, the first program's bytes). Raises EdgegenError when neither way lowers."""
    from edgegen.export.targets import tree_entry
    from edgegen.manifest import file_entry
    from edgegen.paths import atomic_write_bytes
    max_batch = max(ctx.recipe.static_batches)
    needs = {"python": ["executorch"], "executorch": _version(), "delegates": [DELEGATES[delegate][2]]}
    try:
        if max_batch < 2:
            raise ValueError("the recipe's largest batch is 1: nothing to make dynamic")
        data = build(module, ctx, delegate, None, max_batch)
        rel = f"{FORMAT}/{stem}.pte"
        atomic_write_bytes(ctx.path(rel), data)
        entry = file_entry(ctx.root, rel)
        # the bound the program really has (memory planning may set it below the requested maximum,
        # see build): the runtime runs bigger batches in chunks of it
        planned = program_summary(data)["planned_batch"] or max_batch
        entry.update({"partitioner": delegate, "dynamic": True, "max_batch": min(planned, max_batch),
                      "max_batch_requested": max_batch, "requires": needs})
        return entry, data
    except EdgegenError:
        raise
    except Exception as e:  # torch.export / lowering raise many types: try static shapes
        dynamic_reason = first_line(e)
    files, first = {}, None
    try:
        for b in ctx.recipe.static_batches:
            data = build(module, ctx, delegate, b, max_batch)
            rel = f"{FORMAT}/{stem}.b{b}.pte"
            atomic_write_bytes(ctx.path(rel), data)
            files[str(b)] = rel
            first = first or data
    except EdgegenError:
        raise
    except Exception as e:
        raise EdgegenError(f"ExecuTorch cannot lower '{ctx.role}' ({delegate}): dynamic batch: {dynamic_reason}; "
                           f"static batch: {first_line(e)}") from None
    entry = tree_entry(ctx.root, next(iter(files.values())), list(files.values()), static_batches=files)
    entry.update({"partitioner": delegate, "dynamic": False, "dynamic_refused": dynamic_reason, "requires": needs})
    return entry, first


def _version() -> str:
    import importlib.metadata
    return importlib.metadata.version("executorch")


def _record(ctx: TargetContext, key: str, name: str, value) -> None:
    section = ctx.manifest.data.setdefault("export", {}).setdefault(FORMAT, {})
    section.setdefault(key, {})[name] = value


def write(ctx: TargetContext) -> tuple[dict, dict]:
    """The XNNPACK program (fp32, gated), then the structural Core ML / Vulkan programs."""
    from edgegen.export.targets import gated_entry
    import_executorch_runtime()  # one line naming the extra when ExecuTorch is missing
    module = ctx.module.eval()
    try:
        entry, _ = write_pte(ctx, module, "xnnpack", ctx.role)
    except EdgegenError as e:
        _record(ctx, "refused", ctx.role, str(e))
        return {}, {"refused": {"passed": True, "skipped": True, "summary": f"refused: {e}"}}
    files, checks = gated_entry(ctx, FORMAT, "executorch", entry)
    for delegate in STRUCTURAL:
        if delegate not in ctx.recipe.executorch_delegates:
            _record(ctx, "delegates", delegate, {"written": False, "reason": SKIPPED})
            continue
        try:
            d_entry, data = write_pte(ctx, module, delegate, f"{ctx.role}.{delegate}")
        except EdgegenError as e:  # the partitioner does not import, or cannot lower this role
            _record(ctx, "delegates", delegate, {"written": False, "reason": str(e)})
            checks[delegate] = {"passed": True, "skipped": True, "summary": f"skipped: {e}"}
            continue
        check = structural_check(data, ctx, delegate)
        _record(ctx, "delegates", delegate, {"written": True, "check": check["summary"]})
        files[delegate], checks[delegate] = d_entry, check
    for delegate, reason in REFUSED_DELEGATES.items():
        _record(ctx, "delegates", delegate, {"written": False, "reason": reason})
    return files, checks
