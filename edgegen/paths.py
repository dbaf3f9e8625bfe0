"""Where cached artifacts live, and atomic file/folder writes.

Nothing is ever left half-written under its final name, even after SIGKILL or a full disk:
write into a temporary sibling (``.NAME.tmp-PID-XXXX``), then rename it into place. A folder
that already exists is swapped with its replacement in one ``renameat2(RENAME_EXCHANGE)``, so
``NAME`` always holds either the old or the new content. One process writes a folder at a time
(a lock file ``.NAME.lock`` beside it while it writes); the next writer removes what a killed one
left behind and says so on stderr.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from edgegen.errors import EdgegenError

log = logging.getLogger("edgegen")

# errno values of a write refused for lack of space (EFBIG: RLIMIT_FSIZE or a file-size limit)
DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_DISK_FULL_TEXT = tuple(os.strerror(e) for e in sorted(DISK_FULL))


def cache_dir() -> Path:
    """Root of cached runs (evaluator, demo models). ``EDGEGEN_CACHE`` overrides ``./runs``."""
    return Path(os.environ.get("EDGEGEN_CACHE", "runs"))


def _tmp_prefix(final: Path) -> str:
    return f".{final.name}.tmp-{os.getpid()}-"


def _pid_of(name: str, prefix: str) -> int | None:
    """The writer's PID in ``.NAME.tmp-PID-XXXX`` (None for other names, e.g. before PIDs were added)."""
    head = name[len(prefix):].split("-", 1)[0]
    return int(head) if head.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _report(final: Path, removed: list[str], restored: str | None = None) -> None:
    if restored:
        log.warning("edgegen: %s was missing after an interrupted write; restored the previous one from %s",
                    final, restored)
    if removed:
        log.warning("edgegen: removed %d leftover%s of an interrupted write beside %s: %s", len(removed),
                    "s" if len(removed) > 1 else "", final, ", ".join(sorted(removed)))


def clean_leftovers(final: Path, locked: bool) -> list[str]:
    """Remove what killed writers of ``final`` left beside it; returns the names removed.

    ``locked``: the caller holds ``final``'s write lock, so every ``.NAME.tmp-*`` / ``.NAME.old-*``
    / ``.NAME.calibrate-*`` sibling is a dead writer's. Without the lock (single files) only
    entries named with a PID that no longer runs are removed. A ``final`` that is missing while an
    ``.old`` copy exists (a kill between the two renames of the non-Linux fallback) is restored.
    """
    final = Path(final)
    removed: list[str] = []
    restored = None
    try:
        siblings = list(os.scandir(final.parent))
    except FileNotFoundError:
        return removed
    kinds = (f".{final.name}.tmp-", f".{final.name}.old-", f".{final.name}.calibrate-")
    for entry in siblings:
        prefix = next((k for k in kinds if entry.name.startswith(k)), None)
        if prefix is None:
            continue
        pid = _pid_of(entry.name, prefix)
        if not locked and (pid is None or pid == os.getpid() or _alive(pid)):
            continue
        path = Path(entry.path)
        if locked and prefix.endswith(".old-") and not os.path.lexists(final) and restored is None:
            path.rename(final)
            restored = entry.name
            continue
        _remove(path)
        removed.append(entry.name)
    _report(final, removed, restored)
    return removed


@contextlib.contextmanager
def write_lock(final: Path, wait: float = 0):
    """Hold the write lock of ``final`` (an flock on ``.NAME.lock`` beside it, removed afterwards).
    A second writer gets a one-line error at once, or after ``wait`` seconds (for caches several
    processes may fill at the same time).

    filelock (a maintained library, already a dependency of tokenizers' huggingface_hub and of
    torch) takes an flock: the kernel drops it when its holder dies, even by SIGKILL, so a killed
    export never leaves a stale lock (an O_EXCL lock file would). The lock file is removed before
    the lock is released; filelock >= 4.3 notices an unlinked lock file after taking it and takes
    the path's new one instead, so two writers never both hold it."""
    from filelock import FileLock, Timeout
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    lock_path = final.parent / f".{final.name}.lock"
    lock = FileLock(str(lock_path), timeout=wait)
    try:
        lock.acquire()
    except Timeout:
        raise EdgegenError(f"{final} is locked: another process is writing it ({lock_path} is held); "
                           "try again when it has finished") from None
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            lock_path.unlink()  # while held: a writer waiting on this inode re-opens the path (filelock >= 4.3)
        lock.release()


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step with Linux ``renameat2(RENAME_EXCHANGE)`` (glibc >= 2.28).

    Hand-written through ctypes: Python's ``os`` has no renameat2 and no maintained package offers
    it. False where it does not exist (other systems, old kernels, filesystems without it)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def replace_dir(new: Path, final: Path) -> None:
    """Move the folder ``new`` to ``final``, replacing an existing one; ``final`` is never missing.

    Linux: one atomic exchange, then the old content (now at ``new``) is removed. Elsewhere two
    renames (``final`` -> ``.NAME.old-PID``, ``new`` -> ``final``); a kill between them is undone by
    the next writer (``clean_leftovers`` restores the old folder)."""
    new, final = Path(new), Path(final)
    if not os.path.lexists(final):
        new.rename(final)
    elif _exchange(new, final):
        shutil.rmtree(new, ignore_errors=True)
    else:
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        final.rename(old)
        new.rename(final)
        shutil.rmtree(old, ignore_errors=True)


def is_disk_full(e: BaseException) -> bool:
    """A write refused for lack of space (errno, or the message a library wrapped it in)."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in DISK_FULL:
            return True
        if any(t in str(e) for t in _DISK_FULL_TEXT):
            return True
        e = e.__cause__ or e.__context__
    return False


class DiskFull(EdgegenError):
    """A write refused for lack of space; nothing was left behind."""


def disk_full_error(final: Path, e: BaseException) -> DiskFull:
    reason = next((os.strerror(n) for n in sorted(DISK_FULL) if os.strerror(n) in str(e)), "no space left")
    return DiskFull(f"cannot write {final}: {reason} (the disk is full or a file-size limit was hit); "
                        "nothing was written")


def _umask() -> int:
    """The process umask, read without changing it (Linux /proc), else by setting and restoring it."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/self/status") as f:
            return int(next(line for line in f if line.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_dir(final: Path, wait: float = 0):
    """Yield a temporary folder next to ``final``; move it into place on success (replacing an
    existing ``final`` atomically). On any exception the temporary folder is removed and ``final``
    is untouched; a full disk is a one-line EdgegenError. Holds ``final``'s write lock throughout:
    a concurrent writer of the same folder gets a one-line error (after ``wait`` seconds)."""
    final = Path(final)
    with write_lock(final, wait):
        clean_leftovers(final, locked=True)
        tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(final), dir=final.parent))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; the result is an ordinary folder
        try:
            yield tmp
            replace_dir(tmp, final)
        except BaseException as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(e, Exception) and is_disk_full(e):  # also when a library wrapped the OSError
                raise disk_full_error(final, e) from None
            raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``path`` through a temporary sibling and one rename. Leftovers of killed writers of
    the same path are removed first; a full disk is a one-line EdgegenError."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(path, locked=False)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path), dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; the result is an ordinary file
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno in DISK_FULL:
            raise disk_full_error(path, e) from None
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
