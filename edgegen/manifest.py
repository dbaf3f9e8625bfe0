"""The bundle manifest: ``manifest.json``, the only thing runtimes read.

Schema version 2 replaces version 1's ``sampling`` section by ``pipeline``, the stages a
bundle runs (runtimes/stages.py builds them; nothing else branches on their kinds)::

     "pipeline": {
       "condition": {"kind": "none"}                      # unconditional
                  | {"kind": "label"}                     # class label -> the network's label input
                  | {"kind": "label_token", "offset": K}  # class label -> first token K + label (VQ prior)
                  | {"kind": "prompt", "tokenizer": {"file", "text_length"},   # prompt -> token ids
                     "label_prompts": [...], "encoder": ROLE (optional text encoder -> context)},
       "generator": {"kind": "plan", "role", "process", "schedule", "defaults", "gate", "bundle_plans", ...}
                  | {"kind": "tokens", "role", "code_offset", "image_tokens", "grid", "cache", "defaults"},
       "decoder": {"role", "input", "output"},            # optional: codes or latents -> images
       "encoder": {"role", "input", "output"}}            # optional: images -> codes or latents

Version 1 bundles are read and migrated in memory (``migrate``): their ``sampling`` section
becomes ``pipeline.generator`` and the conditioning and decoder it implied become stages.
The rest of version 1, unchanged in version 2::

    {"schema_version": 1, "edgegen_version": "0.1.0", "family": "ddpm", "created_utc": "...",
     "data": {"source": "digits", "shape": [1, 16, 16], "range": [-1.0, 1.0],
              "num_classes": 10, "null_label": 10},
     "roles": {"denoiser": {"inputs": [{"name", "shape", "dtype"}, ...], "outputs": [...],
                            "meta": {...},
                            "files": {FORMAT: {PRECISION: {"path", "sha256", "bytes",
                                                           "companions": [{"path", "sha256", "bytes"}]}}}}},
     "sampling": {"kind": "plan", "role": "denoiser", "process": "ddpm", "schedule": {...},
                  "defaults": {...}, "samplers": [...]},
     "plans": {KEY: plan, ...},            # plans.py format, executed as they are by every runtime
     "verify": "verify.json",              # parity gate results
     "training": {"config": {...}, "stats": {...}}}

Calibration (``edgegen calibrate``, calibration/calibrate.py) adds precision ``int8`` entries
(onnx: QDQ model, openvino: NNCF IR, tensorrt: the ONNX source plus ``calibration_cache``,
coreml: ``int8``, ``palette6``, ``palette4`` weight-compressed packages) and::

     "calibration": {"artifact": "calibration/artifact.json",        # ranges per ONNX tensor + provenance
                     "histograms": "calibration/histograms.safetensors", "inputs": "calibration/inputs.safetensors",
                     "tensorrt_cache": "calibration/tensorrt.cache",  # TRT-<ver>-EntropyCalibration2 text
                     "report": "calibration/report.json",             # gate: drift, FID, accuracy, speed,
                     "provenance": {...}, "budget": {...},            # layers kept in float, naive baseline
                     "passed": true, "kept_float": {FORMAT: [ONNX node names]}},
     "files": {"calibration_artifact": {"path", "sha256", "bytes"}, ...}   # sha256-checked like the models

Paths are relative to the bundle folder. Formats: torch (safetensors weights), onnx,
openvino (xml, with the .bin as companion). Precisions: fp32 (int8 etc. later).
Deployment targets (export/targets.py) add aoti (.pt2), coreml (fp16/fp32 .mlpackage folders,
every file a companion), tensorrt (the ONNX source + profile + compatibility report) and npu
(static-shape ONNX + IR); their entries carry ``requires`` (what a machine needs to run them)
and, for static shapes, ``static_batches`` (batch size -> file or package); the bundle's
``export.recipe`` says how they were built.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from edgegen.errors import EdgegenError
from edgegen.roles import RoleSpec

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
MANIFEST = "manifest.json"
VERIFY = "verify.json"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_entry(root: Path, rel: str) -> dict:
    p = Path(root) / rel
    return {"path": rel, "sha256": sha256_file(p), "bytes": p.stat().st_size}


@dataclass
class Manifest:
    root: Path
    data: dict

    @property
    def family(self) -> str:
        return self.data["family"]

    @property
    def pipeline(self) -> dict:
        """The stages (schema version 2): condition, generator, optional decoder and encoder."""
        return self.data["pipeline"]

    @property
    def generator(self) -> dict:
        return self.data["pipeline"]["generator"]

    @property
    def sampling(self) -> dict:
        """The generator stage (version 1's name for it, kept for readers of its fields)."""
        return self.generator

    def stage(self, name: str) -> dict | None:
        return self.data["pipeline"].get(name)

    # -- typed edits (writers use these instead of editing ``data`` by hand) -----------------
    def set_file(self, role: str, fmt: str, precision: str, entry: dict) -> None:
        self.data["roles"][role].setdefault("files", {}).setdefault(fmt, {})[precision] = entry

    def set_format(self, role: str, fmt: str, entries: dict) -> None:
        """All precisions of one format of a role at once ({precision: entry})."""
        self.data["roles"][role].setdefault("files", {})[fmt] = entries

    def add_side_file(self, name: str, entry: dict) -> None:
        """A file beside the roles (tokenizer.json, calibration artifact), sha256-checked like them."""
        self.data.setdefault("files", {})[name] = entry

    def set_plans(self, plans: dict) -> None:
        self.data["plans"] = plans

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.data["data"]["shape"])

    @property
    def num_classes(self) -> int:
        return int(self.data["data"].get("num_classes", 0))

    @property
    def null_label(self):
        return self.data["data"].get("null_label")

    def role(self, name: str) -> RoleSpec:
        if name not in self.data["roles"]:
            raise EdgegenError(f"bundle {self.root} has no role '{name}'")
        return RoleSpec.from_json(self.data["roles"][name])

    def formats(self, role: str) -> dict:
        return self.data["roles"][role]["files"]

    def file(self, role: str, fmt: str, precision: str = "fp32") -> Path:
        files = self.formats(role)
        if fmt not in files:
            raise EdgegenError(f"bundle {self.root} has no {fmt} export of '{role}' "
                               f"(it has: {', '.join(sorted(files)) or 'none'})")
        if precision not in files[fmt]:
            raise EdgegenError(f"bundle {self.root} has no {precision} {fmt} export of '{role}' "
                               f"(it has: {', '.join(sorted(files[fmt]))})")
        return self.root / files[fmt][precision]["path"]

    def all_files(self):
        yield from self.data.get("files", {}).values()  # files beside the roles (tokenizer.json)
        for role in self.data["roles"].values():
            for per_precision in role["files"].values():
                for entry in per_precision.values():
                    yield entry
                    yield from entry.get("companions", [])

    def verify_files(self) -> None:
        """Check every listed file exists and matches its sha256."""
        for entry in self.all_files():
            p = self.root / entry["path"]
            if not p.is_file():
                raise EdgegenError(f"bundle file missing: {p}")
            if sha256_file(p) != entry["sha256"]:
                raise EdgegenError(f"sha256 mismatch for {p}: the file was changed or corrupted")


def pipeline_from_sampling(sampling: dict, num_classes: int) -> dict:
    """Version 1's ``sampling`` section -> version 2's ``pipeline`` stages (also how families that
    still describe their sampler as one section get their stages)."""
    s = dict(sampling)
    if s.get("kind") == "tokens":
        if s.pop("condition", "label") == "text":
            condition = {"kind": "prompt", "tokenizer": s.pop("tokenizer"), "label_prompts": s.pop("label_prompts", [])}
        else:
            condition = {"kind": "label_token", "offset": s.pop("label_token_offset")}
        out = {"condition": condition, "generator": s,
               "decoder": {"role": s.pop("decoder"), "input": "codes", "output": "x"}}
        if "encoder" in s:
            out["encoder"] = {"role": s.pop("encoder"), "input": "x", "output": "codes"}
        return out
    if s.get("process") == "ddpm":  # version 1 DDPM sections left these to generic code
        d = s.get("defaults", {})
        s.setdefault("gate", {"sampler": "ddim", "steps": 50, "eta": 0.0})
        s.setdefault("bundle_plans", [{"sampler": d.get("sampler", "ddim"), "steps": d.get("steps", 50)},
                                      {"sampler": "ddim", "steps": 50, "eta": 0.0}, {"sampler": "ddpm"}])
    return {"condition": {"kind": "label" if num_classes > 0 else "none"}, "generator": s}


def migrate(data: dict) -> dict:
    """Any readable manifest -> the current schema (a new dict; version 2 is returned as is)."""
    if data.get("schema_version") == SCHEMA_VERSION:
        return data
    out = {k: v for k, v in data.items() if k != "sampling"}
    out["schema_version"] = SCHEMA_VERSION
    out["migrated_from"] = data.get("schema_version")
    out["pipeline"] = pipeline_from_sampling(data["sampling"], int(data["data"].get("num_classes", 0)))
    return out


def read_manifest(root: Path, verify: bool = True) -> Manifest:
    root = Path(root)
    path = root / MANIFEST
    if not root.exists():
        raise EdgegenError(f"bundle not found: {root}")
    if not path.is_file():
        raise EdgegenError(f"{root} is not a bundle (no {MANIFEST})")
    from edgegen.bundle_paths import load_json  # bounded size and nesting, one-line errors
    data = load_json(path)
    found = data.get("schema_version") if isinstance(data, dict) else None
    if found not in READABLE_VERSIONS:
        raise EdgegenError(f"{path}: unsupported schema_version {found!r:.60} (this edgegen reads "
                           f"{', '.join(map(str, READABLE_VERSIONS))})")
    for key in ("family", "data", "roles", "sampling" if found == 1 else "pipeline"):
        if key not in data:
            raise EdgegenError(f"{path}: missing '{key}'")
    from edgegen.bundle_paths import check_manifest  # schema, limits, containment (issue 20)
    check_manifest(root, data, str(path))
    m = Manifest(root, migrate(data))
    if verify:
        m.verify_files()
    return m
