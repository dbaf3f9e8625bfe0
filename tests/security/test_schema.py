"""The manifest and plan schemas: committed, agreeing with the docs, and every malformed value a
one-line error naming its JSON path (Python and the native library), never a traceback."""
from __future__ import annotations

import json
import math
import re

import pytest

import edgegen.manifest as manifest_mod
from edgegen.bundle_paths import SCHEMA_DIR, validate_plan
from edgegen.errors import EdgegenError
from edgegen.manifest import read_manifest
from tests.security.conftest import load, native_load, save

OK, MALFORMED = 0, 3


def schema_properties() -> set[str]:
    names = set()

    def walk(x):
        if isinstance(x, dict):
            names.update(x.get("properties", {}))
            names.update(x.get("required", []))
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    for f in SCHEMA_DIR.glob("*.json"):
        walk(json.loads(f.read_text()))
    return names


def test_schemas_are_versioned_and_valid():
    import jsonschema
    names = sorted(f.name for f in SCHEMA_DIR.glob("*.json"))
    assert names == ["manifest-1.json", "manifest-2.json", "plan-1.json"]
    for f in SCHEMA_DIR.glob("*.json"):
        s = json.loads(f.read_text())
        jsonschema.Draft202012Validator.check_schema(s)
        assert s["$id"].endswith(f.stem)
    assert manifest_mod.SCHEMA_VERSION == 2 and (SCHEMA_DIR / f"manifest-{manifest_mod.SCHEMA_VERSION}.json").is_file()
    for v in manifest_mod.READABLE_VERSIONS:
        assert (SCHEMA_DIR / f"manifest-{v}.json").is_file()


# Names in the docstrings that are example values, not fields.
EXAMPLES = {"denoiser", "calibration_artifact", "kind", "steps"}


def documented_fields(doc: str) -> set[str]:
    keys = set(re.findall(r'"([a-z_][a-z0-9_]*)"\s*:', doc))
    for group in re.findall(r'\{("[a-z_0-9]+"(?:\s*,\s*"[a-z_0-9]+")+)\}', doc):  # {"path", "sha256", ...}
        keys.update(re.findall(r'"([a-z_0-9]+)"', group))
    return keys


def test_every_documented_manifest_field_is_in_the_schema():
    doc_keys = documented_fields(manifest_mod.__doc__)
    assert {"schema_version", "roles", "pipeline", "companions", "tokenizer", "text_length"} <= doc_keys
    missing = doc_keys - schema_properties() - EXAMPLES - {"config", "stats"}  # training: free-form
    assert not missing, f"documented in edgegen/manifest.py but not in edgegen/schemas: {sorted(missing)}"


def test_every_documented_plan_field_is_in_the_schema():
    import edgegen.runtimes.plans as plans
    doc_keys = documented_fields(plans.__doc__)
    assert {"registers", "init", "terms", "noise", "score", "snr"} <= doc_keys
    assert not doc_keys - schema_properties() - EXAMPLES


def _set(data, path, value):
    x = data
    for k in path[:-1]:
        x = x[k]
    x[path[-1]] = value


def _del(data, path):
    x = data
    for k in path[:-1]:
        x = x[k]
    del x[path[-1]]


# (JSON path in the message, mutation)
BAD = [
    ("$.data.shape[1]", lambda d: _set(d, ["data", "shape", 1], "16")),
    ("$.data.shape", lambda d: _set(d, ["data", "shape"], [1, 1 << 20, 1 << 20])),
    ("$.data.shape[0]", lambda d: _set(d, ["data", "shape", 0], 10 ** 30)),
    ("$.data.num_classes", lambda d: _set(d, ["data", "num_classes"], 10 ** 12)),
    ("$.data.range[0]", lambda d: _set(d, ["data", "range", 0], float("nan"))),
    ("$.family", lambda d: _set(d, ["family"], "x" * 100_000)),
    ("$.roles.denoiser.inputs[0].dtype", lambda d: _set(d, ["roles", "denoiser", "inputs", 0, "dtype"], "float128")),
    ("$.roles.denoiser.inputs[0].shape", lambda d: _set(d, ["roles", "denoiser", "inputs", 0, "shape"],
                                                        ["batch", 1 << 24, 1 << 24])),
    ("$.roles.denoiser.outputs", lambda d: _set(d, ["roles", "denoiser", "outputs"], [])),
    ("$.roles.denoiser.files.onnx.fp32", lambda d: _del(d, ["roles", "denoiser", "files", "onnx", "fp32", "sha256"])),
    ("$.roles.denoiser.files.onnx.fp32.path", lambda d: _set(d, ["roles", "denoiser", "files", "onnx", "fp32", "path"], 7)),
    ("$.pipeline.generator.role", lambda d: _set(d, ["pipeline", "generator", "role"], None)),
    ("$.pipeline.generator.defaults.steps", lambda d: _set(d, ["pipeline", "generator", "defaults", "steps"], 10 ** 9)),
    ("$.pipeline.generator.schedule.T", lambda d: _set(d, ["pipeline", "generator", "schedule", "T"], "1000")),
    ("$.pipeline.condition.kind", lambda d: _set(d, ["pipeline", "condition", "kind"], {"x": 1})),
    ("$.pipeline", lambda d: _del(d, ["pipeline", "generator"])),
]


@pytest.mark.parametrize("where,mutate", BAD, ids=[b[0] + f"#{i}" for i, b in enumerate(BAD)])
def test_malformed_value_is_one_line_naming_its_path(bundle, where, mutate):
    data = load(bundle)
    mutate(data)
    save(bundle, data)
    with pytest.raises(EdgegenError) as e:
        read_manifest(bundle, verify=False)
    msg = str(e.value)
    assert "\n" not in msg and where in msg and len(msg) < 600, msg


# The native library checks the same corpus with explicit checks (nlohmann-json has no packaged
# schema validator): the status must be MALFORMED, never a crash or another status.
NATIVE_BAD = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15]


@pytest.mark.parametrize("i", NATIVE_BAD)
def test_native_library_refuses_the_same_corpus(bundle, i):
    data = load(bundle)
    BAD[i][1](data)
    save(bundle, data)
    status, msg = native_load(bundle, verify=0)
    assert status == MALFORMED, (status, msg)
    assert "\n" not in msg


def _plan(bundle):
    data = load(bundle)
    return data, next(iter(data["plans"]))


@pytest.mark.parametrize("mutate,where", [
    (lambda p: p.update(steps=[{"t": 0, "src": "x", "dst": "x", "ops": []}] * 100_001), "$.steps"),
    (lambda p: p.update(registers=[f"r{i}" for i in range(65)]), "$.registers"),
    (lambda p: p.update(shapes={"x": [1 << 20, 1 << 20]}), "x"),
    (lambda p: p["steps"][0].update(t=math.inf), "$.steps[0].t"),
    (lambda p: p["steps"][0]["ops"][0].update(terms="x"), "$.steps[0].ops[0].terms"),
    (lambda p: p.update(format="edgegen.plan/9"), "$.format"),
    # Hypothesis finding (fixed): an unhashable op kind past the first step raised TypeError
    (lambda p: p["steps"][1]["ops"][0].update(op=["affine"]), "$.steps[1].ops[0].op"),
    (lambda p: p["steps"][2].update(ops={"op": "clip"}), "$.steps[2].ops"),
])
def test_stored_plans_are_validated_with_limits(bundle, mutate, where):
    data, key = _plan(bundle)
    mutate(data["plans"][key])
    with pytest.raises(EdgegenError) as e:
        validate_plan(data["plans"][key])
    assert where in str(e.value) and "\n" not in str(e.value)
    save(bundle, data)
    with pytest.raises(EdgegenError, match=re.escape("$.plans")):
        read_manifest(bundle, verify=False)


@pytest.mark.parametrize("path", ["\n", "onnx/a\nb.onnx", "a\x00b", "\x7f"])
def test_control_characters_in_paths_are_refused(bundle, path):
    """Hypothesis finding (fixed): a path "\\n" put a newline into the 'bundle file missing' line."""
    data = load(bundle)
    data["roles"]["denoiser"]["files"]["onnx"]["fp32"]["path"] = path
    save(bundle, data)
    with pytest.raises(EdgegenError, match="control character") as e:
        read_manifest(bundle)
    assert "\n" not in str(e.value)
    status, msg = native_load(bundle)
    assert status == MALFORMED and "control character" in msg, msg


def test_huge_schema_version_is_a_short_line(bundle):
    """Hypothesis finding (fixed): the version was echoed whole (100,000 characters)."""
    data = load(bundle)
    data["schema_version"] = "x" * 100_000
    save(bundle, data)
    with pytest.raises(EdgegenError, match="unsupported schema_version") as e:
        read_manifest(bundle)
    assert len(str(e.value)) < 600


def test_huge_manifest_file_refused_before_parsing(bundle):
    (bundle / "manifest.json").write_bytes(b"{" + b" " * (65 << 20) + b"}")
    with pytest.raises(EdgegenError, match="larger than"):
        read_manifest(bundle)
    status, msg = native_load(bundle)
    assert status == MALFORMED and "larger than" in msg


def test_deeply_nested_json_is_one_line(bundle):
    (bundle / "manifest.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(EdgegenError):
        read_manifest(bundle)
    status, _ = native_load(bundle)
    assert status == MALFORMED


def test_huge_sample_request_is_a_clear_error(bundle):
    """n x sample size above the memory bound: a clear INVALID_ARGUMENT before any allocation."""
    import ctypes
    from edgegen.runtimes.backends.native_backend import LoadParams, SampleParams
    from tests.security.conftest import native_lib
    data = load(bundle)
    key = next(iter(data["plans"]))
    plan = data["plans"][key]
    plan["shapes"] = {r: [1, 4096, 4096] for r in plan["registers"]}  # 16M floats a sample
    lib = native_lib()
    lp = LoadParams()
    lib.edgegen_load_params_init(ctypes.byref(lp))
    h = ctypes.c_void_p()
    assert lib.edgegen_bundle_load(str(bundle).encode(), ctypes.byref(lp), ctypes.byref(h)) == OK
    try:
        sp = SampleParams()
        lib.edgegen_sample_params_init(ctypes.byref(sp))
        text = json.dumps(plan).encode()
        sp.plan_json, sp.n = text, 1_000_000
        count = ctypes.c_size_t()
        status = lib.edgegen_sample_count(h, ctypes.byref(sp), ctypes.byref(count))
        assert status != OK
        assert b"16 GiB" in lib.edgegen_last_error() or b"shape" in lib.edgegen_last_error()
    finally:
        lib.edgegen_bundle_free(h)
