"""Formats that are code: loading them runs what the bundle's author compiled.

An AOTInductor package (``.pt2``) is a shared library that loading executes; a TensorRT engine or
plugin library is native code too (bundles from this exporter carry only the ONNX, and the engine
is built here, which is safe). Such a file loads only when

- the caller passes the explicit switch (``--trust-code``, backend option ``trust_code=True``,
  ``edgegen_load_params.trust_code = 1``), or
- its sha256 is in this machine's allow-list: ``$EDGEGEN_TRUSTED_CODE`` if set, else
  ``$XDG_CONFIG_HOME/edgegen/trusted-code.sha256`` (``~/.config/...``). The exporter adds every
  package it builds, so bundles this machine built itself load without the switch.

Allow-list format (shared with the C++ runtime, runtimes/native/src/paths.cpp): one entry a line,
64 lowercase hex digits, optionally followed by whitespace and a note; ``#`` starts a comment.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from edgegen.errors import EdgegenError

ENV = "EDGEGEN_TRUSTED_CODE"
_HEX = re.compile(r"^[0-9a-f]{64}$")
CODE_FORMATS = {"aoti": "AOTInductor package", "tensorrt": "TensorRT engine/plugin"}


def allow_list_path() -> Path:
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "edgegen" / "trusted-code.sha256"


def trusted_hashes() -> set[str]:
    try:
        text = allow_list_path().read_text(errors="replace")
    except OSError:
        return set()
    out = set()
    for line in text.splitlines():
        word = line.split("#", 1)[0].strip().split(maxsplit=1)
        if word and _HEX.match(word[0]):
            out.add(word[0])
    return out


def record_built(sha256: str, note: str = "") -> None:
    """Add a file this machine built to the allow-list (temp + rename; concurrent writers may
    lose each other's line, never corrupt the file)."""
    from edgegen.paths import atomic_write_text
    if not _HEX.match(sha256) or sha256 in trusted_hashes():
        return
    path = allow_list_path()
    try:
        old = path.read_text(errors="replace") if path.is_file() else "# edgegen: code this machine built (trust.py)\n"
        atomic_write_text(path, old + ("" if old.endswith("\n") else "\n") + f"{sha256}  {note}".rstrip() + "\n")
    except OSError as e:  # a read-only home must not fail the export; loading will then need --trust-code
        import warnings
        warnings.warn(f"could not record {sha256[:12]} in {path}: {e}")


def is_code(fmt: str, entry: dict) -> bool:
    """Whether loading this manifest entry executes code from the bundle."""
    if fmt == "aoti":
        return True
    if fmt == "tensorrt":  # our entries are ONNX sources (the engine is built here); anything else is code
        return bool(entry.get("engine") or entry.get("plugins")) or not str(entry.get("path", "")).endswith(".onnx")
    return False


def check_code(manifest, role: str, fmt: str, precision: str, trust_code: bool = False) -> None:
    """Refuse, in one line, to load a code-bearing file that is neither trusted nor allow-listed."""
    entry = manifest.formats(role)[fmt][precision]
    if trust_code or not is_code(fmt, entry):
        return
    from edgegen.manifest import sha256_file
    rel = entry.get("engine") or entry["path"]
    path = manifest.root / rel
    digest = sha256_file(path) if path.is_file() else entry.get("sha256", "")
    if digest in trusted_hashes():
        return
    raise EdgegenError(f"refusing to load the {CODE_FORMATS[fmt]} {rel} of role '{role}': it is native code "
                       f"this machine did not build (sha256 {digest[:16]}...); pass --trust-code if you trust "
                       f"the bundle's author, or add its sha256 to {allow_list_path()}")
