"""Checks on a bundle from a stranger, run by ``read_manifest`` before any listed file is opened.

1. Schema: ``edgegen/schemas/manifest-<version>.json`` (and ``plan-1.json`` for stored plans),
   validated with ``jsonschema``; a bad value deep in the manifest is one line naming its JSON
   path (``$.roles.denoiser.files.onnx.fp32.path``), never a KeyError.
2. Limits: declared sizes a runtime would allocate (tensor dims, sample elements, plan steps and
   registers, string lengths) are bounded (the schema's maxima plus products checked here).
3. Containment: every path the manifest names (role files, companions, side ``files``,
   tokenizer, calibration files, static-batch packages, the OpenVINO ``.bin`` beside an IR, Core
   ML package contents, ONNX external-data locations) resolves inside the bundle folder after
   symlinks: no absolute paths, no ``..``, no symlink that leaves. Only ``lstat``/``readlink``
   are used for this, except ONNX files, whose protobuf is scanned (without any runtime) for
   external-data ``location`` entries.

The C++ runtime does the same in ``runtimes/native/src/paths.cpp``. SECURITY.md says what a
bundle can and cannot do.
"""
from __future__ import annotations

import json
import math
import mmap
import os
from functools import lru_cache
from pathlib import Path, PurePosixPath

from edgegen.errors import EdgegenError

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
MAX_SAMPLE_ELEMS = 1 << 28  # float32 elements of one sample (1 GiB); the C++ plan parser uses the same
MAX_PATH_CHARS = 4096

# Keys whose string values are bundle paths, anywhere inside a role's file entry.
PATH_KEYS = ("path", "calibration_cache", "file", "package", "engine", "plugins", "plugin")
CALIBRATION_PATH_KEYS = ("artifact", "histograms", "inputs", "tensorrt_cache", "report")


# -- schema --------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _schema(name: str) -> dict:
    return json.loads((SCHEMA_DIR / f"{name}.json").read_text())


@lru_cache(maxsize=None)
def _validator(name: str):
    try:
        import jsonschema
        from referencing import Registry, Resource
    except ImportError:  # pragma: no cover - jsonschema is a base dependency
        raise EdgegenError("validating a bundle needs the Python package 'jsonschema': pip install jsonschema") from None
    resources = [(s["$id"], Resource.from_contents(s)) for s in (_schema(n) for n in ("manifest-1", "manifest-2", "plan-1"))]
    cls = jsonschema.validators.validator_for(_schema(name))
    return cls(_schema(name), registry=Registry().with_resources(resources))


def json_path(parts) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if str(p).isidentifier() else f"[{json.dumps(str(p))}]")
    return out


def _short(value, limit: int = 60) -> str:
    try:
        text = json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _one_line(err) -> str:
    """The deepest, most specific message of a jsonschema error, on one line."""
    best = err
    while best.context:  # anyOf/oneOf: the branch that got furthest
        best = max(best.context, key=lambda e: (len(e.absolute_path), -len(e.message)))
    where = json_path(best.absolute_path)
    v = best.validator
    if v == "required":
        msg = best.message.split(" is a required property")[0]
        return f"{where}: missing {msg}"
    if v in ("type", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
             "minLength", "maxLength", "minItems", "maxItems", "pattern", "maxProperties", "format"):
        want = {"type": f"must be of type {best.validator_value}", "enum": f"must be one of {best.validator_value}",
                "const": f"must be {_short(best.validator_value)}", "minimum": f"must be >= {best.validator_value}",
                "maximum": f"must be <= {best.validator_value} (limit)",
                "exclusiveMinimum": f"must be > {best.validator_value}",
                "exclusiveMaximum": f"must be < {best.validator_value}",
                "minLength": f"must have at least {best.validator_value} characters",
                "maxLength": f"is longer than {best.validator_value} characters (limit)",
                "minItems": f"must have at least {best.validator_value} items",
                "maxItems": f"has more than {best.validator_value} items (limit)",
                "pattern": f"must match {best.validator_value}",
                "maxProperties": f"has more than {best.validator_value} entries (limit)",
                "format": f"must be a {best.validator_value}"}[v]
        return f"{where} {want}, got {_short(best.instance)}"
    return f"{where}: {best.message[:200]}"


def validate(instance, name: str, what: str) -> None:
    """Raise one EdgegenError line for the first schema violation (``name``: manifest-2, plan-1)."""
    if _has_bad_float(instance):
        raise EdgegenError(f"{what}: {_bad_float_path(instance)} is NaN or infinite")
    errors = sorted(_validator(name).iter_errors(instance), key=lambda e: (list(map(str, e.absolute_path))))
    if errors:
        raise EdgegenError(f"{what}: {_one_line(errors[0])}"[:500])


def _has_bad_float(x) -> bool:
    if isinstance(x, float):
        return not math.isfinite(x)
    if isinstance(x, dict):
        return any(_has_bad_float(v) for v in x.values())
    if isinstance(x, list):
        return any(_has_bad_float(v) for v in x)
    return False


def _bad_float_path(x, parts=()) -> str:
    if isinstance(x, float) and not math.isfinite(x):
        return json_path(parts)
    items = x.items() if isinstance(x, dict) else enumerate(x) if isinstance(x, list) else ()
    for k, v in items:
        if _has_bad_float(v):
            return _bad_float_path(v, (*parts, k))
    return json_path(parts)


_OP_FIELDS = {"affine": {"terms": "terms"}, "clip": {"lo": "num", "hi": "num"},
              "langevin": {"score": "reg", "scale": "num", "snr": "num", "alpha": "num"},
              "blend": {"a": "reg", "b": "reg", "mask": "reg"}}


def _is_num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and -1e30 <= x <= 1e30


def _is_reg(x) -> bool:
    return isinstance(x, str) and 1 <= len(x) <= 64


def _check_step(step, where: str) -> None:
    """plan-1.json's rules for one step, by hand: jsonschema takes seconds on a 1000-step plan.
    tests/security/test_fuzz.py checks the two agree."""
    def bad(path, msg):
        raise EdgegenError(f"{where}{path} {msg}")
    if not isinstance(step, dict):
        bad("", "must be of type object")
    for key in ("t", "src", "dst", "ops"):
        if key not in step:
            bad("", f"is missing '{key}'")
    if step["t"] is not None and not _is_num(step["t"]):
        bad(".t", f"must be null or a number of magnitude at most 1e30, got {_short(step['t'])}")
    for key in ("src", "dst"):
        if not _is_reg(step[key]):
            bad(f".{key}", f"must be a register name (1-64 characters), got {_short(step[key])}")
    for name in ("ops", "preview_ops"):  # preview_ops is optional (plans.py "preview")
        if name in step:
            _check_ops(step[name], name, bad)


def _check_ops(ops, name: str, bad) -> None:
    if not isinstance(ops, list) or len(ops) > 64:
        bad(f".{name}", "must be an array of at most 64 ops (limit)")
    for j, op in enumerate(ops):
        w = f".{name}[{j}]"
        if not isinstance(op, dict) or "op" not in op or "dst" not in op:
            bad(w, "must be an object with 'op' and 'dst'")
        if not isinstance(op["op"], str) or op["op"] not in _OP_FIELDS:  # a list here was a fuzz finding
            bad(f"{w}.op", f"must be one of {list(_OP_FIELDS)}, got {_short(op['op'])}")
        if not _is_reg(op["dst"]):
            bad(f"{w}.dst", f"must be a register name, got {_short(op['dst'])}")
        for key, kind in _OP_FIELDS[op["op"]].items():
            if key not in op:
                bad(w, f"is missing '{key}'")
            v = op[key]
            if kind == "num" and not _is_num(v) or kind == "reg" and not _is_reg(v):
                bad(f"{w}.{key}", f"must be a {'number' if kind == 'num' else 'register name'}, got {_short(v)}")
            if kind == "terms" and not (isinstance(v, list) and len(v) <= 64 and all(
                    isinstance(t, list) and len(t) == 2 and _is_reg(t[0]) and _is_num(t[1]) for t in v)):
                bad(f"{w}.terms", "must be at most 64 [register, number] pairs")
        if "noise" in op and op["op"] == "affine" and not _is_num(op["noise"]):
            bad(f"{w}.noise", f"must be a number, got {_short(op['noise'])}")


def validate_plan(plan, what: str = "plan") -> None:
    """An ``edgegen.plan/1`` document against plan-1.json, plus its size limits. The schema checks
    everything but steps 2..N, which ``_check_step`` checks with the same rules, fast."""
    if isinstance(plan, dict) and isinstance(plan.get("steps"), list) and len(plan["steps"]) > 1:
        limit = _schema("plan-1")["properties"]["steps"]["maxItems"]
        if len(plan["steps"]) > limit:
            raise EdgegenError(f"{what}: $.steps has more than {limit} items (limit)")
        validate(dict(plan, steps=plan["steps"][:1]), "plan-1", what)
        for i, step in enumerate(plan["steps"][1:], 1):
            _check_step(step, f"{what}: $.steps[{i}]")
    else:
        validate(plan, "plan-1", what)
    for reg, dims in (plan.get("shapes") or {}).items():
        if math.prod(dims) > MAX_SAMPLE_ELEMS:
            raise EdgegenError(f"{what}: register {reg!r} has {math.prod(dims)} elements per sample "
                               f"(limit {MAX_SAMPLE_ELEMS})")


def check_limits(data: dict, where: str) -> None:
    """Products the schema cannot express: elements per sample and per tensor."""
    elems = math.prod(data["data"]["shape"])
    if elems > MAX_SAMPLE_ELEMS:
        raise EdgegenError(f"{where}: $.data.shape asks for {elems} elements per sample (limit {MAX_SAMPLE_ELEMS})")
    for role, r in data["roles"].items():
        for kind in ("inputs", "outputs"):
            for i, t in enumerate(r[kind]):
                n = math.prod(d for d in t["shape"] if isinstance(d, int))
                if n > MAX_SAMPLE_ELEMS:
                    raise EdgegenError(f"{where}: {json_path(('roles', role, kind, i, 'shape'))} asks for {n} "
                                       f"elements per sample (limit {MAX_SAMPLE_ELEMS})")


# -- containment ---------------------------------------------------------------------------------
def manifest_paths(data: dict) -> list[tuple[str, str]]:
    """(JSON path, bundle-relative path) of every file or folder the manifest names."""
    out: list[tuple[str, str]] = []

    def walk(x, parts, in_static=False):
        if isinstance(x, dict):
            for k, v in x.items():
                if isinstance(v, str) and (k in PATH_KEYS or in_static):
                    out.append((json_path((*parts, k)), v))
                elif isinstance(v, list) and k in ("plugins",):
                    out.extend((json_path((*parts, k, i)), s) for i, s in enumerate(v) if isinstance(s, str))
                else:
                    walk(v, (*parts, k), in_static or k == "static_batches")
        elif isinstance(x, list):
            for i, v in enumerate(x):
                if isinstance(v, str) and in_static:
                    out.append((json_path((*parts, i)), v))
                else:
                    walk(v, (*parts, i), in_static)

    for name, role in (data.get("roles") or {}).items():
        if isinstance(role, dict):
            walk(role.get("files"), ("roles", name, "files"))
    walk(data.get("files"), ("files",))
    calib = data.get("calibration")
    if isinstance(calib, dict):
        for k in CALIBRATION_PATH_KEYS:
            if isinstance(calib.get(k), str):
                out.append((json_path(("calibration", k)), calib[k]))
    if isinstance(data.get("verify"), str):
        out.append(("$.verify", data["verify"]))
    for section in ("pipeline", "sampling"):  # the tokenizer (version 2 condition stage, version 1 sampling)
        s = data.get(section)
        if isinstance(s, dict):
            for stage_name, stage in ([("condition", s.get("condition"))] if section == "pipeline" else [("", s)]):
                tok = stage.get("tokenizer") if isinstance(stage, dict) else None
                if isinstance(tok, dict) and isinstance(tok.get("file"), str):
                    parts = (section, stage_name, "tokenizer", "file") if stage_name else (section, "tokenizer", "file")
                    out.append((json_path(parts), tok["file"]))
    return out


def _inside(real: str, root_real: str) -> bool:
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def check_relative(rel, where: str) -> None:
    """The lexical rules: a relative POSIX path without ``..``, NUL, backslash or drive."""
    if not isinstance(rel, str) or not rel:
        raise EdgegenError(f"{where}: a bundle path must be a non-empty string")
    if len(rel) > MAX_PATH_CHARS or any(ord(c) < 0x20 or ord(c) == 0x7F for c in rel):
        raise EdgegenError(f"{where}: bundle path is too long or holds a control character (NUL, newline, ...)")
    if rel.startswith(("/", "\\")) or (len(rel) > 1 and rel[1] == ":") or os.path.isabs(rel):
        raise EdgegenError(f"{where}: absolute path {rel[:200]!r} is not allowed (paths are relative to the bundle)")
    if "\\" in rel or ".." in PurePosixPath(rel).parts:
        raise EdgegenError(f"{where}: path {rel[:200]!r} leaves the bundle folder ('..' or '\\' is not allowed)")


def check_contained(root: Path, rel: str, where: str) -> Path:
    """``root/rel`` after every symlink, refused unless it lies inside ``root``; returns it."""
    check_relative(rel, where)
    root_real = os.path.realpath(root)
    real = os.path.realpath(os.path.join(root_real, rel))
    if not _inside(real, root_real):
        raise EdgegenError(f"{where}: {rel[:200]!r} resolves outside the bundle folder (a symlink leaves it)")
    if os.path.isdir(real):  # a package folder (Core ML .mlpackage): every entry inside must stay inside
        for dirpath, dirnames, filenames in os.walk(real):
            for name in dirnames + filenames:
                p = os.path.join(dirpath, name)
                if os.path.islink(p) and not _inside(os.path.realpath(p), root_real):
                    raise EdgegenError(f"{where}: {os.path.relpath(p, root_real)!r} inside {rel[:100]!r} "
                                       "is a symlink that leaves the bundle folder")
    return Path(real)


def _declared_sha256(data: dict) -> dict:
    """bundle path -> the sha256 the manifest declares for it."""
    out = {}

    def walk(x):
        if isinstance(x, dict):
            if isinstance(x.get("path"), str) and isinstance(x.get("sha256"), str):
                out[x["path"]] = x["sha256"]
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(data.get("roles"))
    walk(data.get("files"))
    return out


def check_containment(root: Path, data: dict, where: str) -> None:
    root_real = os.path.realpath(root)
    for jp, rel in manifest_paths(data):
        real = check_contained(root, rel, f"{where}: {jp}")
        if real.suffix == ".xml":  # OpenVINO reads <stem>.bin beside the IR whether listed or not
            bin_ = real.with_suffix(".bin")
            if os.path.lexists(bin_) and not _inside(os.path.realpath(bin_), root_real):
                raise EdgegenError(f"{where}: {jp}: the weights {bin_.name!r} beside {rel!r} are a symlink that "
                                   "leaves the bundle folder")
        if real.suffix == ".onnx" and real.is_file():
            try:
                locations = onnx_external_locations(real)
            except EdgegenError:  # a corrupted file: say so the way verify_files does, when it is that
                want = _declared_sha256(data).get(rel)
                from edgegen.manifest import sha256_file
                if want and sha256_file(real) != want:
                    raise EdgegenError(f"sha256 mismatch for {Path(root) / rel}: the file was changed or corrupted") from None
                raise
            for loc in locations:
                check_contained(real.parent, loc, f"{where}: {jp}: ONNX external data")
                if not _inside(os.path.realpath(real.parent / loc), root_real):
                    raise EdgegenError(f"{where}: {jp}: ONNX external data {loc!r} leaves the bundle folder")


# -- ONNX external data, from the protobuf wire format (no onnx package needed) -------------------
# ModelProto.graph = 7; GraphProto: node 1, initializer 5, sparse_initializer 15; NodeProto.attribute 5;
# AttributeProto: t 5, g 6, tensors 10, graphs 11, sparse_tensor 22, sparse_tensors 23;
# SparseTensorProto: values 1, indices 2; TensorProto.external_data 13 (StringStringEntryProto key 1, value 2);
# ModelProto.functions 25 -> FunctionProto.node 7.
_TENSOR_CHILDREN = {}  # TensorProto: external_data handled directly
_MESSAGES = {
    "model": {7: "graph", 25: "function"},
    "function": {7: "node"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "node": {5: "attr"},
    "attr": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
}
MAX_ONNX_DEPTH = 64


def _varint(buf, i: int, end: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= end or shift > 63:
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _scan(buf, start: int, end: int, kind: str, out: list, depth: int) -> None:
    if depth > MAX_ONNX_DEPTH:
        raise ValueError("nesting too deep")
    i = start
    while i < end:
        key, i = _varint(buf, i, end)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, i = _varint(buf, i, end)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        elif wire == 2:
            n, i = _varint(buf, i, end)
            if i + n > end:
                raise ValueError("length past the end")
            if kind == "tensor" and field == 13:  # external_data entry
                k = v = None
                j = i
                while j < i + n:
                    key2, j = _varint(buf, j, i + n)
                    if key2 & 7 != 2:
                        raise ValueError("bad external_data entry")
                    m, j = _varint(buf, j, i + n)
                    s = bytes(buf[j:j + m]).decode("utf-8", "replace")
                    j += m
                    if key2 >> 3 == 1:
                        k = s
                    elif key2 >> 3 == 2:
                        v = s
                if k == "location" and v is not None:
                    out.append(v)
            elif field in _MESSAGES.get(kind, {}):
                _scan(buf, i, i + n, _MESSAGES[kind][field], out, depth + 1)
            i += n
        else:
            raise ValueError(f"wire type {wire}")
    if i != end:
        raise ValueError("field past the end")


def onnx_external_locations(path: Path) -> list[str]:
    """Every external-data ``location`` in an ONNX model (initializers, subgraphs, functions)."""
    out: list[str] = []
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return out
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            try:
                _scan(buf, 0, len(buf), "model", out, 0)
            except (ValueError, IndexError) as e:
                raise EdgegenError(f"{path.name} is not a valid ONNX protobuf ({e})") from None
    return out


# -- the entry point -----------------------------------------------------------------------------
def check_manifest(root: Path, data: dict, where: str) -> None:
    """Schema (by version), limits, stored plans, containment: one EdgegenError line on the first problem."""
    version = data.get("schema_version")
    plans = data.get("plans")  # validated one by one below (validate_plan is fast on long plans)
    validate({k: v for k, v in data.items() if k != "plans"}, f"manifest-{version}", where)
    if plans is not None and (not isinstance(plans, dict) or len(plans) > 256 or any(len(k) > 256 for k in plans)):
        raise EdgegenError(f"{where}: $.plans must be an object of at most 256 plans (limit), keys of at most "
                           f"256 characters, got {_short(plans) if not isinstance(plans, dict) else len(plans)}")
    check_limits(data, where)
    for key, plan in (plans or {}).items():
        validate_plan(plan, f"{where}: $.plans[{json.dumps(key)}]")
    check_containment(Path(root), data, where)


MAX_MANIFEST_BYTES = 64 << 20


def load_json(path: Path):
    """Parse a manifest (or plan) file: at most MAX_MANIFEST_BYTES, one EdgegenError line otherwise."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise EdgegenError(f"{path} is {size} bytes: larger than the {MAX_MANIFEST_BYTES >> 20} MiB a manifest may be")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EdgegenError(f"malformed {path}: {e}") from None
    except RecursionError:
        raise EdgegenError(f"malformed {path}: JSON nested too deeply") from None
