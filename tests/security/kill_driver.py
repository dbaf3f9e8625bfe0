"""Run an edgegen command (or a plain folder writer) and SIGKILL this process at a named point of
the atomic writes in edgegen/paths.py, for tests/security/test_durability.py.

    python tests/security/kill_driver.py POINT -- ARGS...

ARGS are ``edgegen`` CLI arguments, or ``write-folder FINAL TAG FILES SLEEP``: atomic_dir(FINAL)
filled with FILES files holding TAG (sleeping SLEEP seconds inside, to hold the write lock).

POINT (the process kills itself with SIGKILL there; nothing is mocked, the write is real):
  none         run to the end
  mkdtemp      the temporary folder of atomic_dir was just created
  replace      the folder is complete, before it is moved into place
  exchange     right after the atomic swap, before the old copy is removed
  gap          the non-Linux fallback (renameat2 reported unavailable): between its two renames
  file[:NAME]  a file is written under its temporary name, before its rename (only NAME's if given)
  body         write-folder only: after its first file
"""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import edgegen.paths as paths


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def arm(point: str) -> None:
    kind, _, name = point.partition(":")
    if kind in ("none", "body"):
        return
    if kind == "mkdtemp":
        mkdtemp = paths.tempfile.mkdtemp

        def mk(*a, **k):
            mkdtemp(*a, **k)
            die()
        paths.tempfile.mkdtemp = mk
    elif kind == "replace":
        paths.replace_dir = lambda new, final: die()
    elif kind == "exchange":
        exchange = paths._exchange

        def ex(a, b):
            if not exchange(a, b):
                raise SystemExit("renameat2(RENAME_EXCHANGE) is not available here")
            die()
        paths._exchange = ex
    elif kind == "gap":
        paths._exchange = lambda a, b: False
        rename = Path.rename

        def rn(self, target):
            out = rename(self, target)
            if Path(target).name.startswith(f".{self.name}.old-"):
                die()
            return out
        Path.rename = rn
    elif kind == "file":
        replace = os.replace

        def rp(src, dst, *a, **k):
            if not name or Path(dst).name == name:
                die()
            return replace(src, dst, *a, **k)
        os.replace = rp
    else:
        raise SystemExit(f"unknown kill point {point}")


def write_folder(final: str, tag: str, files: str, sleep: str, point: str) -> int:
    with paths.atomic_dir(Path(final)) as tmp:
        for i in range(int(files)):
            (tmp / f"part{i}.txt").write_text(f"{tag} {i}\n" * 1000)
            if i == 0:
                time.sleep(float(sleep))
                if point == "body":
                    die()
        (tmp / "sub").mkdir()
        paths.atomic_write_text(tmp / "sub" / "manifest.json", f'{{"tag": "{tag}"}}')
    return 0


def main() -> int:
    point, sep, *args = sys.argv[1:]
    assert sep == "--", sys.argv
    arm(point)
    if args[0] == "write-folder":
        from edgegen.errors import EdgegenError
        try:
            return write_folder(*args[1:], point)
        except EdgegenError as e:  # as the CLI reports it
            print(f"edgegen: error: {e}", file=sys.stderr)
            return 2
    from edgegen.cli import main as cli
    return cli(args)


if __name__ == "__main__":
    sys.exit(main())
