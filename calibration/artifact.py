"""The portable calibration artifact: what every quantizer reads.

Stored in the bundle under ``calibration/``:

- ``artifact.json``: schema ``edgegen.calibration/1``; provenance (how the data was recorded,
  the ONNX file's sha256 the tensor names belong to); per ONNX tensor name the activation
  ``min``, ``max``, ``amax`` (max |x|) and ``amax_p9999`` (99.99th percentile of |x|, from the
  histogram).
- ``histograms.safetensors``: per tensor name, a float32 histogram of |x| (``BINS`` bins
  over [0, amax]), so other range estimators (entropy, percentiles) need no new data.
- ``inputs.safetensors``: the recorded network inputs themselves (role input names, plus
  ``__step__``), for quantizers that collect their own statistics on their own graph (NNCF,
  Core ML) and for the sensitivity analysis.

Tensor statistics come from running the fp32 ONNX model with every float activation exposed
as an output, in two passes (ranges, then histograms over those ranges).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from safetensors.numpy import load_file, save_file
from tqdm import tqdm

from edgegen.calibration.graph import float_tensors
from edgegen.calibration.record import CalibrationSet
from edgegen.errors import EdgegenError
from edgegen.manifest import sha256_file
from edgegen.paths import atomic_write_text

SCHEMA = "edgegen.calibration/1"
BINS = 2048
STEP_KEY = "__step__"


@dataclass
class Artifact:
    ranges: dict[str, dict]  # tensor name -> {"min", "max", "amax", "amax_p9999"}
    histograms: dict[str, np.ndarray]  # tensor name -> (BINS,) counts of |x| over [0, amax]
    calib: CalibrationSet
    provenance: dict

    def amax(self, name: str, method: str = "minmax") -> float:
        r = self.ranges[name]
        return float(r["amax_p9999"] if method == "percentile" else r["amax"])

    def save(self, folder: Path) -> dict[str, str]:
        """Write the three files into ``folder``; returns {"artifact", "histograms", "inputs"} -> file name."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: np.ascontiguousarray(v) for k, v in self.histograms.items()},
                  str(folder / "histograms.safetensors"))
        save_file({**{k: np.ascontiguousarray(v) for k, v in self.calib.inputs.items()}, STEP_KEY: self.calib.step},
                  str(folder / "inputs.safetensors"))
        doc = {"schema": SCHEMA, "provenance": self.provenance, "calibration_data": self.calib.provenance,
               "histogram_bins": BINS, "histogram_of": "abs", "tensors": self.ranges}
        atomic_write_text(folder / "artifact.json", json.dumps(doc, indent=1))
        return {"artifact": "artifact.json", "histograms": "histograms.safetensors", "inputs": "inputs.safetensors"}


def load(folder: Path) -> Artifact:
    folder = Path(folder)
    try:
        doc = json.loads((folder / "artifact.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise EdgegenError(f"cannot read the calibration artifact in {folder}: {e}") from None
    if doc.get("schema") != SCHEMA:
        raise EdgegenError(f"{folder}/artifact.json: unsupported schema {doc.get('schema')!r} (expected {SCHEMA})")
    raw = load_file(str(folder / "inputs.safetensors"))
    step = raw.pop(STEP_KEY)
    return Artifact(doc["tensors"], load_file(str(folder / "histograms.safetensors")),
                    CalibrationSet(raw, step, doc["calibration_data"]), doc["provenance"])


def _session(model: onnx.ModelProto, names: list[str], folder: Path):
    """A session of ``model`` (its external weights, if any, read from ``folder``) that also returns
    every tensor in ``names``."""
    import onnxruntime as ort

    from edgegen.export.onnx_data import session
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for n in names:
        if n not in have and n not in {i.name for i in m.graph.input}:
            m.graph.output.append(onnx.helper.make_empty_tensor_value_info(n))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every named tensor
    so.intra_op_num_threads = 1
    return session(m, folder, so)


def percentile_amax(hist: np.ndarray, amax: float, q: float = 0.9999) -> float:
    c = np.cumsum(hist, dtype=np.float64)
    if c[-1] <= 0:
        return amax
    i = int(np.searchsorted(c, q * c[-1]))
    return float(min(amax, (i + 1) * amax / len(hist)))


def build(onnx_path: Path, calib: CalibrationSet, batch: int = 32, progress: bool = False) -> Artifact:
    """Run the fp32 ONNX model over the calibration set; ranges and |x| histograms per float tensor."""
    from edgegen.export.onnx_data import data_files, load_graph
    model = load_graph(onnx_path)  # external weights (a network over 2 GB) stay on disk: ORT reads them
    names = float_tensors(model)
    sess = _session(model, names, Path(onnx_path).parent)
    outs = [o.name for o in sess.get_outputs()]
    feeds = {i.name for i in sess.get_inputs()}
    lo = {n: np.inf for n in names}
    hi = {n: -np.inf for n in names}

    def tensors(b):
        vals = dict(zip(outs, sess.run(outs, {k: v for k, v in b.items() if k in feeds})))
        vals.update({k: v for k, v in b.items() if k in names})
        return vals

    n_batches = -(-len(calib) // batch)
    with tqdm(total=2 * n_batches, desc="calibration statistics", disable=not progress, dynamic_ncols=True) as bar:
        for b in calib.batches(batch):
            for n, v in tensors(b).items():
                if n in lo and v.size:
                    lo[n] = min(lo[n], float(v.min()))
                    hi[n] = max(hi[n], float(v.max()))
            bar.update(1)
        amax = {n: max(abs(lo[n]), abs(hi[n]), 1e-12) if np.isfinite(lo[n]) else 0.0 for n in names}
        hist = {n: np.zeros(BINS, dtype=np.float64) for n in names}
        for b in calib.batches(batch):
            for n, v in tensors(b).items():
                if n in hist and amax[n] > 0:
                    hist[n] += np.histogram(np.abs(v), bins=BINS, range=(0.0, amax[n]))[0]
            bar.update(1)
    seen = [n for n in names if np.isfinite(lo[n])]
    ranges = {n: {"min": lo[n], "max": hi[n], "amax": amax[n], "amax_p9999": percentile_amax(hist[n], amax[n])}
              for n in seen}
    prov = {"onnx": Path(onnx_path).name, "onnx_sha256": sha256_file(Path(onnx_path)), "tensors": len(seen)}
    data = data_files(onnx_path)
    if data:  # the weights are there, not in the model file
        prov["onnx_data_sha256"] = {d.name: sha256_file(d) for d in data}
    return Artifact(ranges, {n: hist[n].astype(np.float32) for n in seen}, calib, prov)
