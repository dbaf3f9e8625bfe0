"""Write a bundle from a training run: weights, exports, plans, manifest, parity results.

Everything happens in a temporary folder that is renamed into place only after
every format passed its parity gate; a failure leaves no bundle behind.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from safetensors.torch import save_file
from tqdm import tqdm

from edgegen.errors import EdgegenError
from edgegen.export.example_inputs import example_inputs
from edgegen.export.parity import gate, reference
from edgegen.export.recipe import ExportRecipe
from edgegen.export.targets import TARGETS, TargetContext, describe_check, write_target
from edgegen.manifest import MANIFEST, VERIFY, Manifest, file_entry
from edgegen.paths import atomic_dir, atomic_write_text
from edgegen.runtimes.api import manifest_from_run
from edgegen.runtimes.backends import create_backend
from edgegen.runtimes.plans import compile_plan
from edgegen.train.runs import load_run, role_tensors

FORMATS = ("onnx", "openvino", "aoti", "coreml", "tensorrt", "npu")  # targets.py writes the last four
DEFAULT_FORMATS = ("onnx", "openvino")  # what the demo and a plain `edgegen export` write
FORMAT_BACKEND = {"onnx": "onnxruntime", "openvino": "openvino", "aoti": "torch-aoti", "coreml": "coreml",
                  "tensorrt": "tensorrt"}


def parse_formats(text: str) -> list[str]:
    formats = [f.strip().lower() for f in text.split(",") if f.strip()]
    if not formats:
        raise EdgegenError(f"no export format given (choose from {', '.join(FORMATS)})")
    for f in formats:
        if f not in FORMATS:
            raise EdgegenError(f"unknown export format '{f}' (choose from {', '.join(FORMATS)})")
    return list(dict.fromkeys(formats))


def default_plans(sampling: dict) -> dict:
    """Plans every runtime can execute from the bundle alone: the family's list ("bundle_plans"),
    else (DDPM) the default sampler, DDIM-50 and full DDPM."""
    d = sampling.get("defaults", {})
    if "bundle_plans" in sampling:
        plans = [compile_plan(sampling, p["sampler"], p.get("steps")) for p in sampling["bundle_plans"]]
        return {p.key: p.to_json() for p in plans}
    plans = [compile_plan(sampling, d.get("sampler", "ddim"), d.get("steps", 50), d.get("eta", 0.0)),
             compile_plan(sampling, "ddim", 50, 0.0),
             compile_plan(sampling, "ddpm", None)]
    return {p.key: p.to_json() for p in plans}


def _write_format(fmt: str, module, spec, example, root: Path, role: str, scratch: Path) -> dict:
    from edgegen.export.onnx_export import export_onnx
    onnx_rel = f"onnx/{role}.onnx"
    if fmt == "onnx":
        (root / "onnx").mkdir(exist_ok=True)
        export_onnx(module, spec, example, root / onnx_rel)
        return file_entry(root, onnx_rel)
    if fmt == "openvino":
        from edgegen.export.openvino_export import export_openvino
        src = root / onnx_rel
        if not src.exists():  # openvino alone: convert from an ONNX file kept outside the bundle
            src = scratch / f"{role}.onnx"
            export_onnx(module, spec, example, src)
        (root / "openvino").mkdir(exist_ok=True)
        xml_rel = f"openvino/{role}.xml"
        export_openvino(src, root / xml_rel)
        entry = file_entry(root, xml_rel)
        entry["companions"] = [file_entry(root, f"openvino/{role}.bin")]
        return entry
    raise EdgegenError(f"unknown export format '{fmt}'")


def export_bundle(run_path: Path, formats: list[str], out: Path, progress: bool = True,
                  recipe: ExportRecipe | None = None) -> dict:
    """Export every role of the run to ``formats``; returns the verify.json content."""
    recipe = recipe or ExportRecipe()
    run = load_run(run_path)
    base = manifest_from_run(run_path).data
    order = sorted(formats, key=FORMATS.index)  # onnx before openvino (converted from it)
    with atomic_dir(Path(out)) as root, tempfile.TemporaryDirectory() as scratch:
        bar = tqdm(total=len(run.modules) * (1 + 2 * len(order)), desc="export", disable=not progress,
                   dynamic_ncols=True)
        data = dict(base)
        data["created_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        data["plans"] = default_plans(data["sampling"]) if data["sampling"].get("kind") != "tokens" else {}
        data["verify"] = VERIFY
        if any(f in TARGETS for f in order):
            data["export"] = {"recipe": recipe.to_json()}
        (root / "torch").mkdir()
        if "tokenizer" in data["sampling"]:  # token families with text: the run's tokenizer.json
            name = data["sampling"]["tokenizer"]["file"]
            (root / name).write_bytes((Path(run_path) / name).read_bytes())
            data["files"] = {"tokenizer": file_entry(root, name)}
        for role, module in run.modules.items():
            rel = f"torch/{role}.safetensors"
            save_file(role_tensors({role: module}), str(root / rel))
            data["roles"][role]["files"] = {"torch": {"fp32": file_entry(root, rel)}}
            bar.update(1)
        manifest = Manifest(root, data)
        results: dict = {}
        for role, module in run.modules.items():
            spec = manifest.role(role)
            example = example_inputs(spec, 2, 0, manifest.num_classes)
            ref = reference(manifest, create_backend("torch", manifest, role, module=module))
            for fmt in order:
                bar.set_postfix_str(f"{role} -> {fmt}")
                if fmt in TARGETS:  # written and checked by its own module (export/targets.py)
                    ctx = TargetContext(role, module, spec, example, root, Path(scratch), manifest, recipe, ref)
                    files, checks = write_target(fmt, ctx)
                    if files:
                        data["roles"][role]["files"][fmt] = files
                    results.setdefault(role, {})[fmt] = checks
                    bar.update(2)
                    continue
                data["roles"][role]["files"][fmt] = {"fp32": _write_format(fmt, module, spec, example, root,
                                                                           role, Path(scratch))}
                bar.update(1)
                bar.set_postfix_str(f"{role} {fmt} parity")
                other = create_backend(FORMAT_BACKEND[fmt], manifest, role, "fp32")
                results.setdefault(role, {}).setdefault(fmt, {})["fp32"] = gate(manifest, ref, other)
                bar.update(1)
        bar.close()
        failed = [f"{role}/{fmt}/{prec}: {describe_check(r)}" for role, per in results.items()
                  for fmt, by_prec in per.items() for prec, r in by_prec.items() if not r["passed"]]
        verify = {"passed": not failed, "results": results}
        atomic_write_text(root / VERIFY, json.dumps(verify, indent=2))
        if failed:
            raise EdgegenError(f"parity gate failed ({'; '.join(failed)}); no bundle written")
        atomic_write_text(root / MANIFEST, json.dumps(data, indent=1))
    return verify
