"""The bundle manifest: ``manifest.json``, the only thing runtimes read.

Schema (version 1)::

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

SCHEMA_VERSION = 1
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
    def sampling(self) -> dict:
        return self.data["sampling"]

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


def read_manifest(root: Path, verify: bool = True) -> Manifest:
    root = Path(root)
    path = root / MANIFEST
    if not root.exists():
        raise EdgegenError(f"bundle not found: {root}")
    if not path.is_file():
        raise EdgegenError(f"{root} is not a bundle (no {MANIFEST})")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EdgegenError(f"malformed {path}: {e}") from None
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        found = data.get("schema_version") if isinstance(data, dict) else None
        raise EdgegenError(f"{path}: unsupported schema_version {found!r} (expected {SCHEMA_VERSION})")
    for key in ("family", "data", "roles", "sampling"):
        if key not in data:
            raise EdgegenError(f"{path}: missing '{key}'")
    m = Manifest(root, data)
    if verify:
        m.verify_files()
    return m
