"""Core ML compressed packages: int8 linear weights, 4- and 6-bit palettization, and
activation quantization from the recorded calibration data where coremltools can run it.

The fp16 ML program comes from the export stage's conversion (export/coreml_export.py), one
package per static batch size; coremltools.optimize.coreml then compresses its weights:
``linear_quantize_weights`` (int8, symmetric, per channel) and ``palettize_weights`` (k-means
look-up tables of 4 and 6 bits). Only conv / conv_transpose weights are compressed: the
linear layers of these networks are the time/label embedding projections (the conditioning
path, never quantized). Activation quantization (W8A8, ``linear_quantize_activations``) needs
Core ML predictions to collect statistics, which only macOS can run: elsewhere it is skipped
with that reason. Every package is validated structurally (export/coreml_validate.py).
"""
from __future__ import annotations

import contextlib
import io
import platform
import tempfile
import warnings
from pathlib import Path

import numpy as np

from edgegen.calibration.record import CalibrationSet
from edgegen.errors import EdgegenError

VARIANTS = ("int8", "palette6", "palette4")  # manifest precision names
COMPRESSED_OPS = ("conv", "conv_transpose")


def _config(ct, variant: str):
    o = ct.optimize.coreml
    op = (o.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel")
          if variant == "int8" else o.OpPalettizerConfig(mode="kmeans", nbits=int(variant[len("palette"):])))
    return o.OptimizationConfig(op_type_configs={k: op for k in COMPRESSED_OPS})


def compress(ct, model, variant: str):
    o = ct.optimize.coreml
    if variant == "int8":
        return o.linear_quantize_weights(model, _config(ct, variant))
    return o.palettize_weights(model, _config(ct, variant))


def activation_reason() -> str | None:
    if platform.system() != "Darwin":
        return (f"coremltools collects activation statistics with Core ML predictions, which run on macOS only "
                f"(this is {platform.system()})")
    return None


def quantize_activations(ct, model, calib: CalibrationSet, batch: int, feed_dtypes: dict):
    """W8A8 from the recorded inputs (macOS only); ``calib`` rows grouped into the package's batch."""
    o = ct.optimize.coreml
    cfg = o.OptimizationConfig(global_config=o.OpLinearQuantizerConfig(mode="linear_symmetric"))
    n = (len(calib) // batch) * batch
    samples = [{k: v[s:s + batch].astype(feed_dtypes.get(k, v.dtype)) for k, v in calib.inputs.items()}
               for s in range(0, n, batch)]
    if not samples:
        raise EdgegenError(f"{len(calib)} calibration calls do not fill one batch of {batch}")
    return o.linear_quantize_activations(model, cfg, samples)


def write(manifest, role: str, out_root: Path, calib: CalibrationSet, batches: tuple[int, ...],
          progress: bool = False) -> tuple[dict, dict]:
    """Write ``coreml/<role>/<variant>/b<N>.mlpackage``; returns ({variant: manifest entry}, {variant: check})."""
    from edgegen.export.coreml_export import convert, import_coremltools
    from edgegen.export.coreml_validate import validate
    from edgegen.export.recipe import ExportRecipe
    from edgegen.export.targets import TargetContext, static_reason, tree_entry
    from edgegen.runtimes.backends import create_backend
    ct = import_coremltools()
    spec = manifest.role(role)
    reason = static_reason(spec)
    if reason:
        return {}, {"skipped": {"passed": True, "skipped": True, "summary": f"skipped: {reason}"}}
    recipe = ExportRecipe(**{k: v for k, v in manifest.data.get("export", {}).get("recipe", {}).items()
                             if k in ("coreml_compute_units", "coreml_attention", "coreml_target")},
                          static_batches=tuple(batches))
    module = create_backend("torch", manifest, role).module.eval()  # rebuilt by the registry's torch backend
    act_reason = activation_reason()
    variants = list(VARIANTS) + ([] if act_reason else ["w8a8"])
    packages: dict[str, dict] = {v: {} for v in variants}
    results: dict[str, list] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as scratch:
        ctx = TargetContext(role, module, spec, {}, Path(out_root), Path(scratch), manifest, recipe)
        for batch in batches:
            src = Path(scratch) / f"b{batch}.mlpackage"
            convert(module, ctx, batch, "fp16", src)
            base = ct.models.MLModel(str(src), skip_model_load=True)
            for v in variants:
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                        warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:
                        if v == "w8a8":
                            from edgegen.runtimes.backends.coreml_backend import FEED_DTYPES
                            feed = {t.name: FEED_DTYPES.get(t.dtype, np.float32) for t in spec.inputs}
                            m = quantize_activations(ct, compress(ct, base, "int8"), calib, batch, feed)
                        else:
                            m = compress(ct, base, v)
                    except EdgegenError:
                        raise
                    except Exception as e:
                        raise EdgegenError(f"Core ML {v} compression failed: {str(e).strip().splitlines()[0]}") from e
                rel = f"coreml/{role}/{v}/b{batch}.mlpackage"
                dst = Path(out_root) / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                m.save(str(dst))
                packages[v][str(batch)] = rel
                r = validate(dst, spec, batch, "fp16")
                r["weights"] = _weight_summary(ct, dst)
                results[v].append(r)
    files, checks = {}, {}
    for v in variants:
        rels = list(packages[v].values())
        files[v] = tree_entry(Path(out_root), f"{rels[0]}/Manifest.json", rels, static_batches=packages[v],
                              compute_units=recipe.coreml_compute_units, compute_precision="fp16",
                              compression=_describe(v), minimum_deployment_target=recipe.coreml_target,
                              requires={"system": "Darwin", "strict_system": True, "python": ["coremltools"],
                                        "os": f"{recipe.coreml_target} / macOS 14 or later"})
        ok = all(r["passed"] and r["weights"]["compressed"] > 0 for r in results[v])
        checks[v] = {"check": "structural", "passed": ok, "packages": results[v],
                     "summary": "; ".join(f"{r['summary']}, {r['weights']['compressed']} compressed weights "
                                          f"({r['weights']['kind']})" for r in results[v])}
    checks["w8a8"] = checks.get("w8a8") or {"check": "skipped", "passed": True, "skipped": True,
                                            "summary": f"activation quantization skipped: {act_reason}"}
    return files, checks


def _describe(v: str) -> str:
    return {"int8": "int8 linear symmetric per-channel weights (conv)", "palette6": "6-bit k-means palette (conv)",
            "palette4": "4-bit k-means palette (conv)", "w8a8": "int8 weights and activations"}[v]


def _weight_summary(ct, package: Path) -> dict:
    """Count the compressed weight ops in the saved program (constexpr_* ops hold them)."""
    from edgegen.export.coreml_validate import op_counts
    counts = op_counts(ct.utils.load_spec(str(package)))
    kinds = {k: v for k, v in counts.items() if k.startswith("constexpr_")}
    return {"compressed": sum(kinds.values()), "kind": ", ".join(sorted(kinds)) or "none"}
