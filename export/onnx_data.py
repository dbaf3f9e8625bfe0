"""ONNX models whose weights live in external data files (``<role>.onnx.data`` beside the model, what
export/onnx_export.py writes for a network over 2 GB).

The model file names its data files by a location relative to its own folder, so code that copies a
model, writes a rewritten model elsewhere, or hands a model to onnxruntime from memory must take the
data along. A model without external data is unaffected by every helper here (its data list is empty).

- ``load_graph``: the model with its external weights left unloaded (their references kept): small in
  memory whatever the network's size, so it can be serialized (protobuf stops at 2 GB), shape-inferred
  and rewritten;
- ``save_graph``: write such a (rewritten) graph, its data files copied beside it, checked by path;
- ``copy_model``: a model and its data files to another name or folder;
- ``session``: an onnxruntime session from an in-memory graph, its data read from the source folder;
- ``data_entries``: manifest companions for the data files, so the manifest's sha256 covers them.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import onnx


def data_files(path: Path) -> list[Path]:
    """The external data files the model at ``path`` names (beside it); [] for a self-contained model."""
    from edgegen.export.onnx_export import external_data
    return external_data(Path(path))


def load_graph(path: Path) -> onnx.ModelProto:
    """The model at ``path`` without its external weights (references kept; inline tensors loaded)."""
    return onnx.load(str(path), load_external_data=False)


def copy_data(src: Path, folder: Path) -> list[Path]:
    """Copy the data files the model ``src`` names into ``folder`` (same names: the locations the model
    records). A real copy, gigabytes for a big network: ONNX's checker refuses a data file with several
    hard links (a "hardlink attack"), and a symbolic link could point out of the bundle.
    Returns the paths in ``folder``."""
    out = []
    folder = Path(folder)
    for data in data_files(src):
        dst = folder / data.name
        if not _same_file(data, dst):
            tmp = folder / f".{data.name}.tmp"
            shutil.copy2(data, tmp)  # with its mtime: the next call for the same folder skips it
            tmp.replace(dst)
        out.append(dst)
    return out


def _same_file(a: Path, b: Path) -> bool:
    """``b`` is ``a`` or a copy this module made of it (same size and mtime, as rsync decides): the static
    variants of one role share one data copy per folder, copied once."""
    if not b.exists():
        return False
    sa, sb = a.stat(), b.stat()
    return os.path.samefile(a, b) or (sa.st_size == sb.st_size and sa.st_mtime_ns == sb.st_mtime_ns)


def copy_model(src: Path, dst: Path) -> list[Path]:
    """Copy the model ``src`` to ``dst`` with its data files beside it; returns the data files written."""
    shutil.copyfile(src, dst)
    return copy_data(src, Path(dst).parent)


def save_graph(model: onnx.ModelProto, dst: Path, src: Path) -> list[Path]:
    """Write ``model`` (loaded from ``src`` by load_graph, maybe rewritten) to ``dst``, the data files of
    ``src`` copied beside it, and run the ONNX checker on the file (it reads the data from there; in
    memory it cannot, and a model over 2 GB cannot be checked in memory at all)."""
    data = copy_data(src, Path(dst).parent)
    onnx.save(model, str(dst))  # tensors not loaded keep their references; nothing is rewritten
    onnx.checker.check_model(str(dst))
    return data


def session(model: onnx.ModelProto, folder: Path, options=None, providers=("CPUExecutionProvider",)):
    """An onnxruntime session of the in-memory ``model`` whose external data lies in ``folder``."""
    import onnxruntime as ort
    so = options or ort.SessionOptions()
    so.add_session_config_entry("session.model_external_initializers_file_folder_path", str(folder))
    return ort.InferenceSession(model.SerializeToString(), so, providers=list(providers))


def data_entries(root: Path, path: Path) -> list[dict]:
    """Manifest companion entries (path, sha256, bytes) of the data files of the model at ``path``."""
    from edgegen.manifest import file_entry
    return [file_entry(root, p.relative_to(root).as_posix()) for p in data_files(path)]
