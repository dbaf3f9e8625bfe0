"""Property-based fuzzing (Hypothesis) of the manifest reader, plan validation and `edgegen info`:
mutations of a valid manifest (delete a key, change a value's type, absurd numbers, NaN, huge
strings) load or give one EdgegenError line, never another exception. The native library gets the
same mutations: a status, never a crash.

`make test` runs a few dozen examples; `make fuzz` sets EDGEGEN_FUZZ_EXAMPLES (thousands)."""
from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import shutil

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from edgegen.errors import EdgegenError  # noqa: E402
from edgegen.manifest import read_manifest  # noqa: E402

EXAMPLES = int(os.environ.get("EDGEGEN_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize="EDGEGEN_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=list(HealthCheck), database=None)

VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(1 << 70), max_value=1 << 70),
    st.sampled_from([0, -1, 1 << 31, 1 << 40, 10 ** 30, 1e308, -1e308]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["../x", "/etc/passwd", "x" * 100_000, "batch", "", "\x00", "onnx/../../x"]),
    st.lists(st.integers(min_value=-5, max_value=1 << 30), max_size=9),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


def paths_of(x, prefix=()):
    yield prefix
    if isinstance(x, dict):
        for k, v in x.items():
            yield from paths_of(v, (*prefix, k))
    elif isinstance(x, list):
        for i, v in enumerate(x[:4]):  # long arrays (plan steps): their first items
            yield from paths_of(v, (*prefix, i))


@st.composite
def mutations(draw, data: dict):
    out = copy.deepcopy(data)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in paths_of(out) if p]
        if not paths:
            break
        path = paths[draw(st.integers(0, len(paths) - 1))]
        parent = out
        for k in path[:-1]:
            parent = parent[k]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(VALUES)
    return out


@pytest.fixture(scope="module")
def fuzz_bundle(source_bundle, tmp_path_factory):
    out = tmp_path_factory.mktemp("fuzz") / "bundle"
    shutil.copytree(source_bundle, out)
    return out, json.loads((out / "manifest.json").read_text())


def _write(bundle, data):
    (bundle / "manifest.json").write_text(json.dumps(data, allow_nan=True))


def _one_line(e: Exception) -> None:
    assert "\n" not in str(e) and len(str(e)) < 2000, str(e)[:3000]


def test_fuzz_read_manifest_and_info(fuzz_bundle):
    from edgegen.cli import main
    bundle, valid = fuzz_bundle

    @FUZZ
    @given(mutations(valid))
    def check(data):
        _write(bundle, data)
        try:
            read_manifest(bundle)
        except EdgegenError as e:
            _one_line(e)
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            rc = main(["info", str(bundle)])  # anything but an EdgegenError propagates and fails the test
        assert rc in (0, 2) and len(err.getvalue().strip().splitlines()) <= 1, err.getvalue()
    check()


def test_fuzz_plans(fuzz_bundle):
    from edgegen.bundle_paths import validate_plan
    from edgegen.runtimes.plans import Plan
    _, valid = fuzz_bundle
    plan = next(iter(valid["plans"].values()))

    from edgegen.bundle_paths import _validator

    @FUZZ
    @given(mutations(plan))
    def check(p):
        schema_ok = not any(True for _ in _validator("plan-1").iter_errors(p))
        try:
            validate_plan(p)  # the schema on the header + first step, hand-written checks on the rest
        except EdgegenError as e:
            _one_line(e)
            assert not schema_ok or "elements per sample" in str(e), f"schema accepts, validate_plan refuses: {e}"
            return
        assert schema_ok, "validate_plan accepts a plan plan-1.json refuses"
        try:
            Plan.from_json(p)
        except EdgegenError as e:
            _one_line(e)
    check()


def test_fuzz_native_library(fuzz_bundle):
    from tests.security.conftest import native_load
    bundle, valid = fuzz_bundle
    native_load(bundle)  # skips when the library is not built

    @settings(FUZZ, max_examples=max(10, EXAMPLES // 2))
    @given(mutations(valid))
    def check(data):
        _write(bundle, data)
        status, msg = native_load(bundle, verify=0)
        assert status in (0, 1, 2, 3, 4, 5), (status, msg)
        assert "\n" not in msg
    check()


def test_fuzz_version_1_manifests(fuzz_bundle):
    """Version 1 is validated by manifest-1.json, then migrated: mutations never reach migrate's KeyErrors."""
    from tests.security.conftest import REPO
    bundle, _ = fuzz_bundle
    v1 = json.loads((REPO / "runtimes/native/fuzz/corpus/manifest/v1.json").read_text())

    @FUZZ
    @given(mutations(v1))
    def check(data):
        _write(bundle, data)
        try:
            read_manifest(bundle, verify=False)
        except EdgegenError as e:
            _one_line(e)
    check()
