"""Core ML ML-program packages (``.mlpackage``) for the Apple Neural Engine.

One package per role, precision (fp16, fp32) and static batch size from the export recipe
(the Neural Engine wants static shapes). ``torch.export`` -> ``run_decompositions({})`` ->
``coremltools.convert``; compute units ALL (recorded in the manifest) so Core ML may place
every op it can on the Neural Engine. coremltools converts on Linux but cannot predict there,
so each package is validated structurally (coreml_validate.py).

Attention option ``split_einsum`` (the default) rewrites channels-first self-attention blocks
(a GroupNorm, a 1x1 ``qkv`` conv, a 1x1 ``proj`` conv, a ``scale``) into the layout Apple's
Neural Engine guidance prefers: tensors kept as (B, C, 1, S) and the attention of each head
written as two einsums instead of a bmm over (B, S, C) transposes. The rewrite is checked
against the original module in torch before conversion (``split_einsum_max_abs``).
"""
from __future__ import annotations

import contextlib
import copy
import io
import warnings
from pathlib import Path

import numpy as np
import torch
from edgegen.export.targets import TargetContext, static_reason, tree_entry

from edgegen.errors import EdgegenError
from edgegen.runtimes.backends.coreml_backend import import_coremltools  # noqa: F401 (one quiet import)

NP_DTYPES = {"float32": np.float32, "float16": np.float16, "int32": np.int32, "int64": np.int32}


class SplitEinsumAttention(torch.nn.Module):
    """The same self-attention as the block it wraps, in the Neural Engine's preferred form."""

    def __init__(self, block: torch.nn.Module, heads: int = 1):
        super().__init__()
        self.norm, self.qkv, self.proj, self.scale = block.norm, block.qkv, block.proj, block.scale
        self.heads = int(getattr(block, "heads", heads))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3 * c, 1, h * w)  # (B, 3C, 1, S): channels first
        q, k, v = qkv.split(c, dim=1)  # (B, C, 1, S) each
        outs = []
        for qh, kh, vh in zip(q.chunk(self.heads, 1), k.chunk(self.heads, 1), v.chunk(self.heads, 1)):
            logits = torch.einsum("bchq,bchk->bkhq", qh, kh) * self.scale  # (B, S_k, 1, S_q)
            weights = torch.softmax(logits, dim=1)  # over the keys
            outs.append(torch.einsum("bkhq,bchk->bchq", weights, vh))  # (B, C/heads, 1, S_q)
        out = torch.cat(outs, dim=1).reshape(b, c, h, w)
        return x + self.proj(out)


def _is_attention(m: torch.nn.Module) -> bool:
    qkv, proj = getattr(m, "qkv", None), getattr(m, "proj", None)
    return (isinstance(qkv, torch.nn.Conv2d) and isinstance(proj, torch.nn.Conv2d) and qkv.kernel_size == (1, 1)
            and qkv.out_channels == 3 * qkv.in_channels and hasattr(m, "norm") and hasattr(m, "scale"))


def split_einsum_form(module: torch.nn.Module) -> tuple[torch.nn.Module, int]:
    """A copy of ``module`` with every matching attention block rewritten; returns (copy, count)."""
    module = copy.deepcopy(module).eval()
    count = 0
    for name, child in list(module.named_modules()):
        for attr, sub in list(child.named_children()):
            if _is_attention(sub):
                setattr(child, attr, SplitEinsumAttention(sub))
                count += 1
    return module, count


def convert(module: torch.nn.Module, ctx: TargetContext, batch: int, precision: str, path: Path) -> None:
    ct = import_coremltools()
    spec = ctx.spec
    example = ctx.inputs(batch)
    args = tuple(torch.from_numpy(example[t.name]) for t in spec.inputs)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.export.export(module, args).run_decompositions({})
            model = ct.convert(
                program, convert_to="mlprogram",
                compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
                compute_units=getattr(ct.ComputeUnit, ctx.recipe.coreml_compute_units),
                minimum_deployment_target=getattr(ct.target, ctx.recipe.coreml_target),
                outputs=[ct.TensorType(name=t.name, dtype=NP_DTYPES[t.dtype]) for t in spec.outputs])
            mspec = model.get_spec()
            # torch.export names the inputs after forward()'s arguments: give them the role's names.
            for feature, t in zip(list(mspec.description.input), spec.inputs):
                if feature.name != t.name:
                    ct.utils.rename_feature(mspec, feature.name, t.name)
            model = ct.models.MLModel(mspec, weights_dir=model.weights_dir)
            model.short_description = f"edgegen {ctx.manifest.family} {ctx.role}, batch {batch}, {precision}"
            model.save(str(path))
    except EdgegenError:
        raise
    except Exception as e:  # the converter raises many types; keep its first line
        raise EdgegenError(f"Core ML conversion of '{ctx.role}' failed: {str(e).strip().splitlines()[0]}") from e


def write(ctx: TargetContext) -> tuple[dict, dict]:
    """``coreml/<role>/<precision>/b<N>.mlpackage`` for every precision and static batch size."""
    from edgegen.export.coreml_validate import validate
    reason = static_reason(ctx.spec)
    if reason:
        return {}, {"skipped": {"passed": True, "skipped": True, "summary": f"skipped: {reason}"}}
    recipe = ctx.recipe
    module, rewritten = ctx.module.eval(), 0
    rewrite_err = None
    if recipe.coreml_attention == "split_einsum":
        module, rewritten = split_einsum_form(ctx.module)
        if rewritten:
            example = ctx.inputs(2)
            args = [torch.from_numpy(example[t.name]) for t in ctx.spec.inputs]
            with torch.no_grad():
                a, b = ctx.module(*args), module(*args)
            rewrite_err = float((a - b).abs().max()) if isinstance(a, torch.Tensor) else None
    files, checks = {}, {}
    for precision in recipe.coreml_precisions:
        packages, results = {}, []
        for batch in recipe.static_batches:
            rel = f"coreml/{ctx.role}/{precision}/b{batch}.mlpackage"
            convert(module, ctx, batch, precision, ctx.path(rel))
            packages[str(batch)] = rel
            results.append(validate(ctx.root / rel, ctx.spec, batch, precision))
        first = packages[str(recipe.static_batches[0])]
        files[precision] = tree_entry(
            ctx.root, f"{first}/Manifest.json", list(packages.values()),
            static_batches=packages, compute_units=recipe.coreml_compute_units,
            attention=recipe.coreml_attention, attention_blocks_rewritten=rewritten,
            minimum_deployment_target=recipe.coreml_target, compute_precision=precision,
            requires={"system": "Darwin", "strict_system": True, "python": ["coremltools"],
                      "os": f"{recipe.coreml_target} / macOS 14 or later"})
        passed = all(r["passed"] for r in results) and (rewrite_err is None or rewrite_err <= 1e-4)
        checks[precision] = {"check": "structural", "passed": passed, "packages": results,
                             "split_einsum_max_abs": rewrite_err,
                             "summary": "; ".join(r["summary"] for r in results)
                             + (f"; split-einsum rewrite {rewrite_err:.1e}" if rewrite_err is not None else "")}
    return files, checks
