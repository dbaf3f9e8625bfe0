"""Kill-safe, full-disk-safe and locked writes of bundles, runs and outputs (issue 20).

Every writer goes through edgegen/paths.py: a folder is filled under ``.NAME.tmp-PID-*`` and swapped
into place atomically under a write lock; a file is written under a temporary name and renamed.
These tests SIGKILL real commands (subprocesses, tiny presets) at named points of those writes
(tests/security/kill_driver.py kills itself there) and at random moments, fill the disk with
RLIMIT_FSIZE, and start two exports to one --out. After each: the previous bundle, run or file is
byte-identical (or, after the swap, the new one is complete and verifies), no half-written bundle
is under the final name, and the next write succeeds and removes (and reports) the leftovers.

EDGEGEN_KILL_RUNS (default 1) sets the random kills per command; `make durability` runs more, and
the cases that cost a whole export each (real-export kill points, a second disk-full point).
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.security.conftest import REPO

DRIVER = Path(__file__).with_name("kill_driver.py")
RUNS = int(os.environ.get("EDGEGEN_KILL_RUNS", "1"))
LONG = RUNS > 1
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
KILLED = -signal.SIGKILL


# -- helpers ---------------------------------------------------------------------------------------
def digest(root: Path) -> dict:
    """{relative path: sha256} of every file under root (a file: {name: sha256})."""
    root = Path(root)
    if root.is_file():
        return {root.name: hashlib.sha256(root.read_bytes()).hexdigest()}
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def leftovers(final: Path) -> list[str]:
    kinds = tuple(f".{final.name}.{k}-" for k in ("tmp", "old", "calibrate"))
    return sorted(p.name for p in final.parent.iterdir() if p.name.startswith(kinds))


def _limit_fsize(limit):
    def pre():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # writes past it fail with EFBIG
    return pre if limit else None


def driver(point: str, *args: str, fsize: int | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(DRIVER), point, "--", *args], capture_output=True, text=True,
                          cwd=REPO, env=ENV, timeout=timeout, stdin=subprocess.DEVNULL, preexec_fn=_limit_fsize(fsize))


def start(point: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(DRIVER), point, "--", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO, env=ENV, stdin=subprocess.DEVNULL)


def wait_for_tmp(proc: subprocess.Popen, final: Path, timeout: float = 300, content: str | None = None) -> bool:
    """Wait until ``proc`` has its temporary folder beside ``final`` (holding ``content`` if given);
    False if it ended first."""
    prefix = f".{final.name}.tmp-{proc.pid}-"
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        tmp = [p for p in final.parent.iterdir() if p.name.startswith(prefix)]
        if tmp and (content is None or (tmp[0] / content).exists()):
            return True
        time.sleep(0.005)
    return False


def kill_later(proc: subprocess.Popen, final: Path, delay: float, content: str | None = None) -> dict:
    """SIGKILL ``proc`` ``delay`` seconds after its temporary folder appeared; what was killed when."""
    if not wait_for_tmp(proc, final, content=content):
        out, err = proc.communicate()
        return {"killed": False, "rc": proc.returncode, "stderr": err}
    t0 = time.monotonic()
    while time.monotonic() - t0 < delay and proc.poll() is None:
        time.sleep(0.01)
    tmp = [p for p in final.parent.iterdir() if p.name.startswith(f".{final.name}.tmp-{proc.pid}-")]
    files = sum(1 for p in tmp[0].rglob("*") if p.is_file()) if tmp else None
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate()
    return {"killed": proc.returncode == KILLED, "rc": proc.returncode, "after_s": round(time.monotonic() - t0, 2),
            "files_in_tmp": files, "stderr": err}


def one_line_error(stderr: str, *words: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("edgegen: error")]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("edgegen: error:"), stderr[-3000:]
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def assert_bundle_ok(path: Path) -> None:
    from edgegen.manifest import read_manifest
    read_manifest(path, verify=True)  # every listed file present, sha256 matching
    assert json.loads((path / "verify.json").read_text())["passed"]


# -- the write helpers on their own (plain folders, no torch: each case well under a second) ----
def folder(final: Path, tag: str, point: str = "none") -> subprocess.CompletedProcess:
    return driver(point, "write-folder", str(final), tag, "3", "0")


def folder_is(final: Path, tag: str) -> bool:
    files = sorted(p.name for p in final.iterdir())
    return files == ["part0.txt", "part1.txt", "part2.txt", "sub"] and \
        json.loads((final / "sub" / "manifest.json").read_text()) == {"tag": tag} and \
        all((final / f"part{i}.txt").read_text() == f"{tag} {i}\n" * 1000 for i in range(3))


@pytest.mark.parametrize("point", ["mkdtemp", "body", "file:manifest.json", "replace", "exchange", "gap"])
def test_folder_killed_at_each_write_point(point, tmp_path):
    final = tmp_path / "bundle"
    assert folder(final, "old").returncode == 0
    before = digest(final)
    r = folder(final, "new", point)
    assert r.returncode == KILLED, r.stderr
    if point == "exchange":  # killed after the swap: the new folder is complete, the old one is left over
        assert folder_is(final, "new")
    elif point == "gap":  # the two-rename fallback: nothing under the name until the next writer
        assert not final.exists()
    else:
        assert digest(final) == before
    assert leftovers(final)
    r = folder(final, "again")
    assert r.returncode == 0, r.stderr
    assert ("restored the previous one" if point == "gap" else "leftover") in r.stderr
    assert folder_is(final, "again") and [p.name for p in tmp_path.iterdir()] == ["bundle"]  # no lock file either


def test_second_writer_gets_a_one_line_locked_error(tmp_path):
    final = tmp_path / "bundle"
    assert folder(final, "old").returncode == 0
    before = digest(final)
    holder = start("none", "write-folder", str(final), "first", "3", "60")  # holds the lock for a minute
    try:
        assert wait_for_tmp(holder, final, timeout=60)
        r = folder(final, "second")
        assert r.returncode == 2
        one_line_error(r.stderr, "is locked", "another process is writing it")
        assert digest(final) == before and len(leftovers(final)) == 1  # the holder's only
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.communicate()
    r = folder(final, "third")  # the kernel dropped the killed holder's flock
    assert r.returncode == 0, r.stderr
    assert "leftover" in r.stderr and folder_is(final, "third") and leftovers(final) == []


def test_lock_file_removed_and_a_waiter_stays_exclusive(tmp_path):
    """The holder removes .NAME.lock before releasing it; a writer that waited on the removed file
    takes the path's new one, so a third writer is still refused while the waiter writes."""
    import threading
    from edgegen.errors import EdgegenError
    from edgegen.paths import write_lock
    final = tmp_path / "bundle"
    took, release = threading.Event(), threading.Event()

    def waiter():
        with write_lock(final, wait=30):
            took.set()
            release.wait(30)
    with write_lock(final):
        t = threading.Thread(target=waiter)
        t.start()
        time.sleep(0.3)  # the waiter has opened the lock file and polls it
    assert took.wait(30)
    with pytest.raises(EdgegenError, match="is locked"):
        with write_lock(final):
            pass
    release.set()
    t.join()
    assert list(tmp_path.iterdir()) == []


def test_single_file_disk_full(tmp_path):
    from edgegen.paths import atomic_write_bytes
    target = tmp_path / "x.bin"
    atomic_write_bytes(target, b"old")
    code = ("import sys; from pathlib import Path; from edgegen.errors import EdgegenError\n"
            "from edgegen.paths import atomic_write_bytes\n"
            "try: atomic_write_bytes(Path(sys.argv[1]), b'n' * 100000)\n"
            "except EdgegenError as e: print(f'edgegen: error: {e}', file=sys.stderr); sys.exit(2)\n")
    r = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True, env=ENV,
                       preexec_fn=_limit_fsize(4096))
    assert r.returncode == 2
    one_line_error(r.stderr, "File too large", "nothing was written")
    assert target.read_bytes() == b"old" and leftovers(target) == []


# -- real commands ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """The tiny DDPM training run (`make native-testdata` builds it; trained here if missing)."""
    run = REPO / "build" / "testdata" / "runs" / "ddpm-tiny"
    if not (run / "config.json").is_file():
        from edgegen.train.families import get_preset
        from edgegen.train.runs import train_run
        run = train_run("ddpm", get_preset("ddpm", "tiny"), tmp_path_factory.mktemp("runs") / "ddpm-tiny",
                        progress=False)
    return run


@pytest.fixture
def old_bundle(source_bundle, tmp_path) -> Path:
    out = tmp_path / "out" / "bundle"
    shutil.copytree(source_bundle, out)
    return out


def test_export_killed_at_random_points_then_two_exports_at_once(tiny_run, old_bundle):
    """RUNS exports SIGKILLed at random moments over an existing bundle; then two exports to the
    same --out at once: the second gets a one-line 'locked' error, the first writes a complete
    bundle and removes the killed ones' leftovers."""
    before = digest(old_bundle)
    export = ("export", str(tiny_run), "--format", "onnx", "--quiet", "--out", str(old_bundle))
    rng = random.Random(20)
    span = 4.0  # seconds after the temporary folder appears (make test: the early phases)
    if LONG:  # make durability: anywhere in a whole export, timed once here from its temporary folder
        timing = start("none", *export)
        assert wait_for_tmp(timing, old_bundle)
        t0 = time.monotonic()
        assert timing.wait(timeout=1200) == 0
        span = time.monotonic() - t0
        before = digest(old_bundle)
    kills = []
    for _ in range(RUNS):
        k = kill_later(start("none", *export), old_bundle, rng.uniform(0.0, span))
        kills.append({key: v for key, v in k.items() if key != "stderr"})
        if not k["killed"]:  # it finished first: the new bundle is complete
            assert k["rc"] == 0, k["stderr"][-3000:]
            assert_bundle_ok(old_bundle)
            before = digest(old_bundle)
            continue
        if digest(old_bundle) != before:  # killed after the swap: the new bundle is there, complete
            assert_bundle_ok(old_bundle)
            kills[-1]["after_swap"] = True
            before = digest(old_bundle)
    print("export kills:", json.dumps(kills))
    assert any(k["killed"] for k in kills)
    left = leftovers(old_bundle)  # the last kill's, if the last run was killed
    first = start("none", *export)
    try:
        assert wait_for_tmp(first, old_bundle)
        second = driver("none", *export)
        assert second.returncode == 2
        one_line_error(second.stderr, "is locked")
        out, err = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err[-3000:]
    assert ("leftover" in err) == bool(left), err[-3000:]
    assert leftovers(old_bundle) == []
    assert_bundle_ok(old_bundle)
    assert digest(old_bundle) != before


@pytest.mark.skipif(not LONG, reason="a whole export per kill point: EDGEGEN_KILL_RUNS>1 (make durability)")
@pytest.mark.parametrize("point", ["replace", "exchange", "file:manifest.json"])
def test_export_killed_at_the_swap(point, tiny_run, old_bundle):
    before = digest(old_bundle)
    r = driver(point, "export", str(tiny_run), "--format", "onnx", "--quiet", "--out", str(old_bundle))
    assert r.returncode == KILLED, r.stderr[-3000:]
    if point == "exchange":
        assert_bundle_ok(old_bundle)
    else:
        assert digest(old_bundle) == before
    assert leftovers(old_bundle)


@pytest.mark.parametrize("limit", [pytest.param(256 * 1024, marks=pytest.mark.skipif(
    not LONG, reason="the same path as 900 KiB up to the first file: make durability")), 900 * 1024])
def test_export_on_a_full_disk(limit, tiny_run, old_bundle):
    """256 KiB: the torch weights fail to write (safetensors); 900 KiB: the ONNX file does (torch's
    exporter wraps the OSError). One line, exit 2, the previous bundle untouched, nothing left behind."""
    before = digest(old_bundle)
    r = driver("none", "export", str(tiny_run), "--format", "onnx", "--quiet", "--out", str(old_bundle), fsize=limit)
    assert r.returncode == 2, r.stderr[-3000:]
    one_line_error(r.stderr, "cannot write", str(old_bundle), "nothing was written")
    assert digest(old_bundle) == before and leftovers(old_bundle) == []


def test_sample_killed_before_its_rename_and_on_a_full_disk(source_bundle, tmp_path):
    out = tmp_path / "samples.png"
    sample = ("sample", str(source_bundle), "--n", "4", "--sampler", "ddim", "--steps", "4", "--quiet",
              "--out", str(out))
    out.write_bytes(b"the previous samples.png")
    out.with_suffix(".npy").write_bytes(b"the previous samples.npy")
    before = {**digest(out), **digest(out.with_suffix(".npy"))}

    def same():
        return {**digest(out), **digest(out.with_suffix(".npy"))} == before

    r = driver("none", *sample, "--n", "64", fsize=2048)
    assert r.returncode == 2
    one_line_error(r.stderr, "File too large")
    assert same() and leftovers(out) == [] and leftovers(out.with_suffix(".npy")) == []
    r = driver("file", *sample, "--seed", "1")  # the first file under its temporary name, then SIGKILL
    assert r.returncode == KILLED and same()
    assert leftovers(out) or leftovers(out.with_suffix(".npy"))
    r = driver("none", *sample, "--seed", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "leftover" in r.stderr and leftovers(out) == [] and leftovers(out.with_suffix(".npy")) == []
    assert not same() and np.load(out.with_suffix(".npy")).shape[0] == 4


def test_calibrate_and_train_killed(source_bundle, tiny_run, tmp_path):
    """edgegen calibrate killed at random moments after its copy of the bundle exists, and training
    killed at random moments: the bundle and the previous run stay byte-identical; the next
    calibration succeeds and removes the leftovers."""
    rng = random.Random(21)
    bundle = tmp_path / "cal" / "bundle"
    shutil.copytree(source_bundle, bundle)
    before = digest(bundle)
    calibrate = ("calibrate", str(bundle), "--calls", "16", "--formats", "onnx", "--n", "20", "--drift-n", "2",
                 "--no-naive", "--no-mixed-precision", "--allow-over-budget", "--quiet")
    kills = []
    for _ in range(max(1, RUNS // 2)):
        k = kill_later(start("none", *calibrate), bundle, rng.uniform(0.0, 15.0 if LONG else 2.0),
                       content="manifest.json")
        kills.append({key: v for key, v in k.items() if key != "stderr"})
        if not k["killed"]:  # it finished first
            assert k["rc"] == 0, k["stderr"][-3000:]
            before = digest(bundle)
            continue
        assert digest(bundle) == before and leftovers(bundle)
    print("calibrate kills:", json.dumps(kills))
    run = tmp_path / "runs" / "ddpm-tiny"
    shutil.copytree(tiny_run, run)
    run_before = digest(run)
    for _ in range(max(1, RUNS // 2)):
        proc = start("none", "train", "ddpm", "--preset", "tiny", "--train.threads", "1", "--quiet", "--out", str(run))
        time.sleep(rng.uniform(1.0, 30.0 if LONG else 5.0))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        if proc.returncode == 0:  # it finished first
            run_before = digest(run)
        assert digest(run) == run_before
        print("train kill:", proc.returncode)
    r = driver("none", *calibrate)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "leftover" in r.stderr and leftovers(bundle) == []
    from edgegen.manifest import read_manifest
    assert read_manifest(bundle, verify=True).data["calibration"]["report"] == "calibration/report.json"


def test_atomic_writes_give_ordinary_permissions(tmp_path):
    # mkstemp / mkdtemp create 0600 / 0700; what the writers leave must follow the umask like open()
    from edgegen.paths import atomic_dir, atomic_write_text
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "report.json", "{}")
        with atomic_dir(tmp_path / "bundle") as d:
            (d / "manifest.json").write_text("{}")
    finally:
        os.umask(old)
    assert (tmp_path / "report.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "bundle").stat().st_mode & 0o777 == 0o755
