"""tiny preset: train -> export -> parity on every backend; manifest round trip and integrity."""
import json
import shutil

import numpy as np
import pytest

from edgegen.errors import EdgegenError
from edgegen.export.bundle import parse_formats
from edgegen.train.runs import export_run as export_bundle
from edgegen.manifest import read_manifest
from edgegen.runtimes.api import open_pipeline
from edgegen.runtimes.plans import Plan, edit_plan
from edgegen.runtimes.samplers import compile_plan


def test_verify_json_has_parity_within_bounds(tiny_bundle):
    verify = json.loads((tiny_bundle / "verify.json").read_text())
    assert verify["passed"]
    for fmt in ("onnx", "openvino"):
        r = verify["results"]["denoiser"][fmt]["fp32"]
        assert r["single_call_max_abs"] <= 1e-4 and r["trajectory_max_abs"] <= 1e-3
        assert r["trajectory"] == "ddim-50"


def test_manifest_round_trip(tiny_bundle):
    m = read_manifest(tiny_bundle)
    assert m.family == "ddpm" and m.sample_shape == (1, 16, 16) and m.num_classes == 10 and m.null_label == 10
    spec = m.role("denoiser")
    assert [t.name for t in spec.inputs] == ["x", "t", "y"] and spec.outputs[0].name == "eps"
    assert set(m.formats("denoiser")) == {"torch", "onnx", "openvino"}
    for key, plan in m.data["plans"].items():
        p = Plan.from_json(plan)
        assert p.key == key
        opts = {k: p.params[k] for k in ("eta", "clip_x0") if k in p.params}
        compiled = compile_plan(m.sampling, p.sampler, p.params["steps"], **opts)
        if p.inputs:  # a stored image-to-image / inpainting edit of the plan
            compiled = edit_plan(compiled, m.sampling, p.params.get("strength"), inpaint=p.params.get("inpaint", False))
        assert p.to_json() == compiled.to_json()
    assert {"ddim-50", "ddpm-1000"} <= set(m.data["plans"])
    assert m.data["training"]["config"]["model"]["base_channels"] == 16


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_backends_sample_like_torch(tiny_bundle, backend):
    kw = dict(seed=3, labels=[0, 4, 9], sampler="ddpm", steps=25, guidance=1.5)
    ref = open_pipeline(tiny_bundle, "torch").sample(3, **kw)
    out = open_pipeline(tiny_bundle, backend).sample(3, **kw)
    assert np.max(np.abs(ref - out)) <= 1e-3
    assert not np.allclose(out, open_pipeline(tiny_bundle, backend).sample(3, **{**kw, "seed": 4}))


def test_sha256_mismatch_is_refused(tiny_bundle, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    with open(copy / "onnx" / "denoiser.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(EdgegenError, match="sha256 mismatch"):
        read_manifest(copy)


def test_malformed_manifest(tiny_bundle, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    (copy / "manifest.json").write_text("{not json")
    with pytest.raises(EdgegenError, match="malformed"):
        read_manifest(copy)
    (copy / "manifest.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(EdgegenError, match="schema_version"):
        read_manifest(copy)


def test_unknown_format_rejected():
    with pytest.raises(EdgegenError, match="unknown export format 'tflite'"):
        parse_formats("onnx,tflite")
    assert parse_formats("openvino, onnx,onnx") == ["openvino", "onnx"]


def test_failed_gate_leaves_no_bundle(tiny_run, tmp_path, monkeypatch):
    import edgegen.export.parity as parity
    monkeypatch.setitem(parity.BOUNDS, "fp32", {"single_call_max_abs": 0.0, "trajectory_max_abs": 0.0})
    out = tmp_path / "never"
    with pytest.raises(EdgegenError, match="parity gate failed"):
        export_bundle(tiny_run, ["onnx"], out, progress=False)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_openvino_alone_keeps_no_onnx(tiny_run, tmp_path):
    out = tmp_path / "ov"
    export_bundle(tiny_run, ["openvino"], out, progress=False)
    m = read_manifest(out)
    assert set(m.formats("denoiser")) == {"torch", "openvino"} and not (out / "onnx").exists()


def test_unconditional_model_exports_and_samples(tmp_path):
    """A flat folder of images: no labels, no guidance; the label input is still in the graph."""
    from PIL import Image
    from edgegen.train.families import get_preset
    from edgegen.train.runs import train_run
    g = np.random.default_rng(1)
    (tmp_path / "flat").mkdir()
    for i in range(12):
        Image.fromarray(g.integers(0, 255, (8, 8), dtype=np.uint8)).save(tmp_path / "flat" / f"{i}.png")
    cfg = get_preset("ddpm", "tiny")
    cfg.data.source, cfg.data.image_size = f"folder:{tmp_path / 'flat'}", 8
    cfg.train.steps, cfg.train.batch_size = 2, 8
    run = train_run("ddpm", cfg, tmp_path / "run", progress=False)
    export_bundle(run, ["onnx"], tmp_path / "b", progress=False)
    m = read_manifest(tmp_path / "b")
    assert m.num_classes == 0 and m.null_label is None
    out = open_pipeline(tmp_path / "b", "onnxruntime").sample(3, steps=4, guidance=3.0)
    assert out.shape == (3, 1, 8, 8) and np.isfinite(out).all()
    with pytest.raises(EdgegenError, match="unconditional"):
        open_pipeline(tmp_path / "b", "onnxruntime").sample(1, labels=0)


def test_openvino_ir_keeps_fp32_weights(tiny_bundle):
    import openvino as ov
    model = ov.Core().read_model(str(tiny_bundle / "openvino" / "denoiser.xml"))
    types = {op.get_element_type() for op in model.get_ops() if op.get_type_name() == "Constant"}
    assert ov.Type.f32 in types and not types & {ov.Type.f16, ov.Type.bf16}, types
