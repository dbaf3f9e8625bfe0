"""A TensorRT INT8 calibration cache written from the calibration artifact.

The text format TensorRT's calibrators write and read back (``readCalibrationCache``): a
header line ``TRT-<version>-EntropyCalibration2`` and one line per tensor,
``<tensor name>: <hex of the float32 bits of the scale>``, where the scale is the
quantization step ``amax / 127`` (symmetric int8). The ONNX parser names TensorRT's tensors
after the ONNX tensor names, which are the artifact's keys. The version in the header is
TensorRT's version number (major*10000 + minor*100 + patch from TensorRT 10, major*1000 +
minor*100 + patch before); TensorRT rejects a cache whose header names another version, so
it is taken from the installed ``tensorrt`` when present, else ``DEFAULT_VERSION``.
Tensors on the conditioning path get no scale (TensorRT keeps them in higher precision).
"""
from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Iterable, Optional

from edgegen.calibration.artifact import Artifact
from edgegen.errors import EdgegenError
from edgegen.paths import atomic_write_text

DEFAULT_VERSION = "10.8.0"
HEADER = re.compile(r"^TRT-(\d+)-EntropyCalibration2$")
LINE = re.compile(r"^(.+): ([0-9a-f]{1,8})$")


def version_number(version: str) -> int:
    parts = [int(p) for p in re.findall(r"\d+", version)[:3]] + [0, 0]
    major, minor, patch = parts[:3]
    return major * (10000 if major >= 10 else 1000) + minor * 100 + patch


def installed_version() -> str:
    try:
        import tensorrt
        return tensorrt.__version__
    except ImportError:
        return DEFAULT_VERSION


def scale_hex(scale: float) -> str:
    return format(struct.unpack("<I", struct.pack("<f", scale))[0], "x")


def hex_scale(text: str) -> float:
    return struct.unpack("<f", struct.pack("<I", int(text, 16)))[0]


def render(art: Artifact, skip: Iterable[str] = (), method: str = "minmax", version: Optional[str] = None) -> str:
    skip = set(skip)
    lines = [f"TRT-{version_number(version or installed_version())}-EntropyCalibration2"]
    for name in sorted(art.ranges):
        if name in skip:
            continue
        amax = art.amax(name, method)
        if amax > 0:
            lines.append(f"{name}: {scale_hex(amax / 127.0)}")
    return "\n".join(lines) + "\n"


def write(path: Path, art: Artifact, skip: Iterable[str] = (), method: str = "minmax",
          version: Optional[str] = None) -> dict:
    text = render(art, skip, method, version)
    atomic_write_text(Path(path), text)
    return validate(Path(path), art)


def validate(path: Path, art: Optional[Artifact] = None) -> dict:
    """Structural check: the header, one well-formed line per tensor, finite positive scales that
    give back the artifact's amax."""
    lines = Path(path).read_text().splitlines()
    if not lines or not HEADER.match(lines[0]):
        raise EdgegenError(f"{path}: not a TensorRT EntropyCalibration2 cache (header {lines[:1]})")
    scales = {}
    for ln in lines[1:]:
        m = LINE.match(ln)
        if not m:
            raise EdgegenError(f"{path}: malformed calibration cache line {ln!r}")
        scales[m.group(1)] = hex_scale(m.group(2))
    worst = 0.0
    if art is not None:
        for name, s in scales.items():
            if name not in art.ranges:
                raise EdgegenError(f"{path}: tensor {name!r} is not in the calibration artifact")
            amax = art.amax(name)
            worst = max(worst, abs(s * 127.0 - amax) / amax)
    bad = [n for n, s in scales.items() if not (s > 0 and s < float("inf"))]
    return {"check": "structural", "passed": not bad and worst < 1e-6, "header": lines[0], "tensors": len(scales),
            "max_rel_scale_error": worst, "summary": f"{lines[0]}, {len(scales)} tensor scales"}
