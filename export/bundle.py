"""Write a bundle from an ExportSource: weights, every format, plans, manifest, parity results.

Everything happens in a temporary folder that is renamed into place only after every format
passed its parity gate; a failure leaves no bundle behind. Formats come from one registry
(export/targets.py FORMATS); each writes its files for one role and gates them.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

from safetensors.torch import save_file
from tqdm import tqdm

from edgegen.errors import EdgegenError
from edgegen.export import tokenizer_export
from edgegen.export.example_inputs import example_inputs
from edgegen.export.parity import reference
from edgegen.export.recipe import ExportRecipe
from edgegen.export.source import ExportSource
from edgegen.export.targets import (DEFAULT_FORMATS, FORMATS, TARGETS, TargetContext, describe_check,  # noqa: F401
                                    parse_formats, write_target)
from edgegen.manifest import MANIFEST, VERIFY, Manifest, file_entry
from edgegen.paths import atomic_dir, atomic_write_text
from edgegen.runtimes.backends import create_backend
from edgegen.runtimes.stages import generator_class


def default_plans(manifest: Manifest, wanted: list[dict] | None = None) -> dict:
    """Plans every runtime can execute from the bundle alone: ``wanted`` (parse_plan_specs), else
    the generator stage's default set (the family's ``bundle_plans``)."""
    cls = generator_class(manifest)
    if wanted is None:
        return cls.bundle_plans(manifest.generator)
    if not cls.has_plans:
        raise EdgegenError("this model samples with the token loop: it stores no sampler plans (drop --plans)")
    return cls.bundle_plans(dict(manifest.generator, bundle_plans=wanted))


def _edit_spec(item: str, edit: str) -> dict:
    """'strength0.6' -> {"strength": 0.6}; 'inpaint' -> {"inpaint": True}."""
    if edit == "inpaint":
        return {"inpaint": True}
    if edit.startswith("strength"):
        try:
            s = float(edit[len("strength"):])
        except ValueError:
            s = float("nan")
        if 0.0 < s <= 1.0:
            return {"strength": s}
        raise EdgegenError(f"plan '{item}': strength must be a number in (0, 1], e.g. ddim-50@strength0.6")
    raise EdgegenError(f"plan '{item}': unknown edit '@{edit}' (image-to-image: @strength0.6, inpainting: @inpaint)")


def parse_plan_specs(text: str) -> list[dict]:
    """'ddim-10,ddim-25,ddpm' -> [{"sampler": "ddim", "steps": 10}, ..., {"sampler": "ddpm"}]
    (a sampler without steps: its default steps). Stored image-to-image and inpainting plans
    (plans.edit_plan, for runtimes that do not compile plans): 'ddim-50@strength0.6',
    'ddim-50@inpaint', 'ddim-50@strength0.6@inpaint'."""
    specs = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        base, *edits = item.split("@")
        edit: dict = {}
        for e in edits:
            edit.update(_edit_spec(item, e))
        name, _, steps = base.rpartition("-")
        if name and steps.isdigit():
            if int(steps) == 0:
                raise EdgegenError(f"plan '{item}': the steps must be a positive integer, e.g. ddim-25")
            specs.append({"sampler": name, "steps": int(steps), **edit})
        else:  # a sampler name alone (it may contain dashes)
            specs.append({"sampler": base, **edit})
    if not specs:
        raise EdgegenError("--plans needs a comma list of plans, e.g. ddim-10,ddim-25,ddim-50")
    return specs


def role_tensors(modules: dict) -> dict:
    """{role: module} -> the flat ``<role>.<param>`` tensor dict stored in safetensors files."""
    return {f"{role}.{k}": v.detach().cpu().contiguous() for role, m in modules.items()
            for k, v in m.state_dict().items()}


def export_bundle(source: ExportSource, formats: list[str], out: Path, progress: bool = True,
                  recipe: ExportRecipe | None = None, plans: list[dict] | None = None) -> dict:
    """Export every role of ``source`` to ``formats``; returns the verify.json content. ``plans``:
    the plans to store (parse_plan_specs), None: the family's default set."""
    recipe = recipe or ExportRecipe()
    order = sorted(dict.fromkeys(formats), key=list(FORMATS).index)  # onnx before openvino (converted from it)
    with atomic_dir(Path(out)) as root, tempfile.TemporaryDirectory() as scratch:
        bar = tqdm(total=len(source.modules) * (1 + len(order)), desc="export", disable=not progress,
                   dynamic_ncols=True)
        data = json.loads(json.dumps(source.data))  # a deep copy: the source stays as it was
        data["created_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        data["verify"] = VERIFY
        manifest = Manifest(root, data)
        manifest.set_plans(default_plans(manifest, plans))
        if any(f in TARGETS for f in order):
            data["export"] = {"recipe": recipe.to_json()}
        (root / "torch").mkdir()
        for name, path in source.files.items():  # side files (tokenizer.json), sha256-checked
            shutil.copyfile(path, root / path.name)
            manifest.add_side_file(name, file_entry(root, path.name))
        tokenizer_check = tokenizer_export.write(manifest, root)  # prompt models: tokenizer.xml for C++, gated
        for role, module in source.modules.items():
            rel = f"torch/{role}.safetensors"
            save_file(role_tensors({role: module}), str(root / rel))
            manifest.set_format(role, "torch", {"fp32": file_entry(root, rel)})
            bar.update(1)
        results: dict = {}
        for role, module in source.modules.items():
            spec = manifest.role(role)
            example = example_inputs(spec, 2, 0, manifest.num_classes)
            ref = reference(manifest, create_backend("torch", manifest, role, module=module), source.real_images)
            for fmt in order:
                bar.set_postfix_str(f"{role} -> {fmt}")
                ctx = TargetContext(role, module, spec, example, root, Path(scratch), manifest, recipe, ref)
                files, checks = write_target(fmt, ctx)
                if files:
                    manifest.set_format(role, fmt, files)
                results.setdefault(role, {})[fmt] = checks
                bar.update(1)
        bar.close()
        failed = [f"{role}/{fmt}/{prec}: {describe_check(r)}" for role, per in results.items()
                  for fmt, by_prec in per.items() for prec, r in by_prec.items() if not r["passed"]]
        verify = {"passed": not failed, "results": results}
        if tokenizer_check is not None:
            verify["tokenizer"] = tokenizer_check
        atomic_write_text(root / VERIFY, json.dumps(verify, indent=2))
        if failed:
            raise EdgegenError(f"parity gate failed ({'; '.join(failed)}); no bundle written")
        atomic_write_text(root / MANIFEST, json.dumps(data, indent=1))
    return verify
