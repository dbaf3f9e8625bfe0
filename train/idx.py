"""A reader for the idx format of MNIST and Fashion-MNIST (plain or gzip-compressed).

The format (http://yann.lecun.com/exdb/mnist/): two zero bytes, a type code, the number of
dimensions ``d``; then ``d`` big-endian uint32 sizes; then the values, big-endian, row-major.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from edgegen.errors import EdgegenError

# type code -> big-endian numpy dtype
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an idx file (gzip-compressed or not), in native byte order."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == GZIP_MAGIC:
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as e:
        raise EdgegenError(f"cannot read idx file {path}: {e}") from None
    return parse_idx(raw, str(path))


def parse_idx(raw: bytes, name: str = "idx data") -> np.ndarray:
    """Decode the bytes of an (uncompressed) idx file."""
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in IDX_DTYPES:
        raise EdgegenError(f"{name} is not an idx file (bad header {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise EdgegenError(f"{name} is truncated (header of {ndim} dimensions)")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise EdgegenError(f"{name} has {len(raw)} bytes, its header {shape} says {expected}")
    values = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="))  # a native-order, writable copy


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as an idx file (gzip-compressed when the name ends in .gz); for tests and tools."""
    from edgegen.paths import atomic_write_bytes

    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in IDX_DTYPES.items()}
    if array.dtype not in codes:
        raise EdgegenError(f"idx cannot store dtype {array.dtype}")
    raw = (bytes([0, 0, codes[array.dtype], array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
           + array.astype(array.dtype.newbyteorder(">")).tobytes())
    atomic_write_bytes(Path(path), gzip.compress(raw, mtime=0) if str(path).endswith(".gz") else raw)
