"""ONNX external data (what a > 2 GB network such as Stable Diffusion 1.5's UNet needs): forced on a
tiny user module by lowering onnx_export.EXTERNAL_DATA_BYTES. The data file is a companion of the
ONNX entry, so the manifest's sha256 covers it (Python verify_files and the bundle path checks);
onnxruntime and OpenVINO (the conversion and the native runtime's reader) load it from beside the
model; a changed data file is refused."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from edgegen.errors import EdgegenError  # noqa: E402
from edgegen.export import onnx_export  # noqa: E402
from edgegen.manifest import sha256_file  # noqa: E402
from edgegen.runtimes.api import open_manifest, open_pipeline  # noqa: E402
from edgegen.runtimes.backends.native_backend import NativeBackend  # noqa: E402
from edgegen.train.module_import import OwnModule, import_module  # noqa: E402

FILE = Path(__file__).resolve().parents[2] / "examples/own_module/tiny_unet.py"
SCHEDULER = {"_class_name": "DDIMScheduler", "num_train_timesteps": 100, "prediction_type": "v_prediction",
             "timestep_spacing": "trailing", "clip_sample": False}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("ext") / "bundle"
    mp = pytest.MonkeyPatch()
    mp.setattr(onnx_export, "EXTERNAL_DATA_BYTES", 1024)  # every real network is over this
    mp.setenv("EDGEGEN_TRUSTED_CODE", str(out.parent / "trusted"))
    try:
        verify = import_module(OwnModule(str(FILE), "TinyUNet", {"width": 8, "emb": 16, "num_classes": 0}), out,
                               SCHEDULER, (1, 8, 8), steps=4, progress=False)
    finally:
        mp.undo()
    assert verify["passed"]
    return out


def test_external_data_is_a_sha256_checked_companion(bundle):
    entry = json.loads((bundle / "manifest.json").read_text())["roles"]["denoiser"]["files"]["onnx"]["fp32"]
    assert [c["path"] for c in entry["companions"]] == ["onnx/denoiser.onnx.data"]
    data = bundle / "onnx/denoiser.onnx.data"
    assert entry["companions"][0]["sha256"] == sha256_file(data)
    # the weights really are outside the model file (the torch safetensors holds the same tensors)
    assert data.stat().st_size > 0.8 * (bundle / "torch/denoiser.safetensors").stat().st_size
    model = onnx.load(str(bundle / "onnx/denoiser.onnx"), load_external_data=False)
    assert any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)


def test_runtimes_read_external_data(bundle):
    backends = ["onnxruntime", "openvino"] + ([] if NativeBackend.unavailable() else ["native"])
    outs = [open_pipeline(bundle, b).sample(2, seed=1) for b in backends]
    assert np.abs(outs[0]).max() > 0
    for o in outs[1:]:
        np.testing.assert_allclose(o, outs[0], atol=1e-4)


def test_changed_external_data_is_refused(bundle, tmp_path):
    import shutil
    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    data = copy / "onnx/denoiser.onnx.data"
    raw = bytearray(data.read_bytes())
    raw[100] ^= 0xFF
    data.write_bytes(bytes(raw))
    with pytest.raises(EdgegenError, match="sha256 mismatch.*denoiser.onnx.data"):
        open_manifest(copy)
    data.unlink()
    with pytest.raises(EdgegenError, match="denoiser.onnx.data"):
        open_manifest(copy)
