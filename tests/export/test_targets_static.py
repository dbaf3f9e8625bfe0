"""Core ML packages, the TensorRT compatibility report and the NPU static variants, written by
``export_bundle`` from the tiny DDPM (two static batch sizes to stay fast)."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from edgegen.export.recipe import ExportRecipe

from edgegen.errors import EdgegenError
from edgegen.manifest import read_manifest

BATCHES = (1, 4)


@pytest.fixture(scope="module")
def targets_bundle(tiny_run, tmp_path_factory):
    from edgegen.train.runs import export_run as export_bundle
    out = tmp_path_factory.mktemp("targets") / "ddpm-tiny"
    verify = export_bundle(tiny_run, ["onnx", "coreml", "tensorrt", "npu"], out, progress=False,
                           recipe=ExportRecipe(static_batches=BATCHES))
    return out, verify


def test_every_target_recorded_and_verified(targets_bundle):
    out, verify = targets_bundle
    m = read_manifest(out)  # checks every sha256, package files included
    files = m.formats("denoiser")
    assert {"onnx", "coreml", "tensorrt", "npu"} <= set(files)
    assert m.data["export"]["recipe"]["static_batches"] == list(BATCHES)
    assert verify["passed"]
    for per in verify["results"]["denoiser"].values():
        assert all(r["passed"] for r in per.values())


def test_coreml_packages(targets_bundle):
    out, verify = targets_bundle
    m = read_manifest(out)
    for precision in ("fp16", "fp32"):
        entry = m.formats("denoiser")["coreml"][precision]
        assert entry["compute_units"] == "ALL"
        assert entry["requires"]["system"] == "Darwin"
        assert sorted(map(int, entry["static_batches"])) == list(BATCHES)
        for rel in entry["static_batches"].values():
            assert (out / rel / "Manifest.json").is_file()
        check = verify["results"]["denoiser"]["coreml"][precision]
        assert check["split_einsum_max_abs"] < 1e-5  # the attention rewrite is the same function
        for pkg in check["packages"]:
            assert pkg["passed"] and pkg["ops"] > 0 and not pkg["problems"]
    fp32 = verify["results"]["denoiser"]["coreml"]["fp32"]["packages"][0]
    assert fp32["neural_engine"].startswith("none")  # the Neural Engine has no fp32


def test_coreml_validate_catches_a_wrong_spec(targets_bundle):
    from edgegen.export.coreml_validate import validate
    out, _ = targets_bundle
    m = read_manifest(out)
    rel = m.formats("denoiser")["coreml"]["fp16"]["static_batches"]["4"]
    r = validate(out / rel, m.role("denoiser"), 1, "fp16")  # a batch-4 package checked as batch 1
    assert not r["passed"] and any("shape" in p for p in r["problems"])


def test_split_einsum_rewrite_matches():
    import torch
    from edgegen.export.coreml_export import split_einsum_form
    from edgegen.train.unet import SelfAttention
    torch.manual_seed(0)
    block = torch.nn.Sequential(SelfAttention(16, 8)).eval()
    ane, n = split_einsum_form(block)
    x = torch.randn(3, 16, 4, 4)
    assert n == 1
    torch.testing.assert_close(ane(x), block(x), atol=1e-5, rtol=1e-5)


def test_tensorrt_report_lists_no_unsupported_op(targets_bundle):
    out, verify = targets_bundle
    m = read_manifest(out)
    entry = m.formats("denoiser")["tensorrt"]["fp32"]
    report = json.loads((out / entry["report"]).read_text())
    assert report["passed"] and report["unsupported"] == [] and report["restrictions"] == []
    assert all(d["covered"] for d in report["dynamic_dims"])
    assert report["profile"]["batch"] == [1, max(BATCHES), 2 * max(BATCHES)]
    assert entry["requires"]["device"] == "cuda"


def test_tensorrt_report_flags_unsupported_ops_and_missing_profiles(tmp_path):
    from edgegen.export.tensorrt_compat import report
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "n"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["k"])
    graph = helper.make_graph([helper.make_node("Unique", ["x"], ["y"])], "g", [x], [y])
    path = tmp_path / "u.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    r = report(path, {"batch": [1, 8, 16]})
    assert not r["passed"]
    assert r["unsupported"] == ["Unique"]
    assert [d["dim"] for d in r["dynamic_dims"] if not d["covered"]] == ["n"]


def test_npu_variants_are_static_and_match(targets_bundle):
    out, verify = targets_bundle
    m = read_manifest(out)
    entry = m.formats("denoiser")["npu"]["fp32"]
    for batch, rel in entry["static_batches"]["onnx"].items():
        model = onnx.load(str(out / rel))
        dims = [d for v in (*model.graph.input, *model.graph.output) for d in v.type.tensor_type.shape.dim]
        assert all(d.HasField("dim_value") for d in dims)
        assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == int(batch)
    for v in verify["results"]["denoiser"]["npu"]["fp32"]["variants"]:
        assert v["onnx_cpu_max_abs"] <= 1e-4 and v["openvino_cpu_max_abs"] <= 1e-4
        assert v["qnn_ops"]["nodes"] > 0 and "Conv" in v["qnn_ops"]["ops"]
        assert v["qnn_ops"]["unsupported"] == []  # Shape nodes folded away by the static rewrite
        assert "Shape" not in v["qnn_ops"]["ops"]
    assert entry["qnn_ops"]["unsupported"] == [] and "op_builder_factory.cc" in entry["qnn_ops"]["source"]
    assert "no public per-op list" in entry["openvino_npu_ops"]
    assert "all in the QNN EP list" in verify["results"]["denoiser"]["npu"]["fp32"]["summary"]


def test_qnn_op_check_warns_on_unsupported_ops():
    from onnx import TensorProto, helper

    from edgegen.export.npu_ops import qnn_check
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Unique", ["a"], ["b"]),
             helper.make_node("FusedMatMul", ["b", "b"], ["c"], domain="com.microsoft"),
             helper.make_node("BiasGelu", ["c", "c"], ["d"], domain="com.microsoft")]
    graph = helper.make_graph(nodes, "g", [x], [helper.make_tensor_value_info("d", TensorProto.FLOAT, [4])])
    r = qnn_check(helper.make_model(graph))
    assert r["ops"] == {"Relu": 1, "Unique": 1, "com.microsoft.BiasGelu": 1, "com.microsoft.FusedMatMul": 1}
    assert r["unsupported"] == ["Unique", "com.microsoft.BiasGelu"]
    assert "CPU EP fallback" in r["warning"] and "Unique" in r["warning"]


def test_fix_shapes_folds_shape_nodes(tmp_path):
    from onnx import TensorProto, helper

    from edgegen.export.npu_export import fix_shapes
    from edgegen.roles import RoleSpec, TensorSpec
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2, 3])
    tail = helper.make_tensor("tail", TensorProto.INT64, [2], [2, 3])
    nodes = [helper.make_node("Shape", ["x"], ["s"], start=0, end=1),
             helper.make_node("Concat", ["s", "tail"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["y"])]
    src = tmp_path / "m.onnx"
    onnx.save(helper.make_model(helper.make_graph(nodes, "g", [x], [y], [tail]),
                                opset_imports=[helper.make_opsetid("", 17)]), str(src))
    spec = RoleSpec((TensorSpec("x", ("batch", 6), "float32"),), (TensorSpec("y", ("batch", 2, 3), "float32"),))
    assert fix_shapes(src, tmp_path / "s.onnx", spec, 5) == []
    model = onnx.load(str(tmp_path / "s.onnx"))
    assert [n.op_type for n in model.graph.node] == ["Concat", "Reshape"]
    import onnxruntime as ort
    out = ort.InferenceSession(str(tmp_path / "s.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"x": np.arange(30, dtype=np.float32).reshape(5, 6)})[0]
    assert out.shape == (5, 2, 3)


def test_static_targets_skip_roles_with_varying_dims():
    from edgegen.export.targets import static_reason

    from edgegen.roles import RoleSpec, TensorSpec
    kv = RoleSpec((TensorSpec("tokens", ("batch", "seq"), "int64"),), (TensorSpec("logits", ("batch", "seq", 5),
                                                                                   "float32"),))
    assert "seq" in static_reason(kv)
    with pytest.raises(EdgegenError, match="no static shapes"):
        from edgegen.export.targets import static_shapes
        static_shapes(kv, 2)


def test_recipe_rejects_bad_batches():
    with pytest.raises(EdgegenError, match="increasing positive"):
        ExportRecipe(static_batches=(4, 1))
    assert np.all(np.diff(ExportRecipe().static_batches) > 0)


def test_another_family_without_per_family_code(tmp_path):
    """The DCGAN generator (no null label, a latent input instead of x/t) through the static targets."""
    from edgegen.train.runs import export_run as export_bundle
    from edgegen.train.families import get_preset
    from edgegen.train.runs import train_run
    cfg = get_preset("gan", "tiny")
    cfg.train.threads = 1
    run = train_run("gan", cfg, tmp_path / "run", progress=False)
    verify = export_bundle(run, ["coreml", "tensorrt", "npu"], tmp_path / "b", progress=False,
                           recipe=ExportRecipe(static_batches=(2,), coreml_precisions=("fp16",)))
    assert verify["passed"]
    m = read_manifest(tmp_path / "b")
    assert {"coreml", "tensorrt", "npu"} <= set(m.formats("generator"))


def test_onnxruntime_runs_the_npu_variants(targets_bundle):
    """What the QNN execution provider gets (static shapes, padded batches), run on the CPU EP."""
    from edgegen.export.example_inputs import example_inputs
    from edgegen.runtimes.backends import create_backend
    out, _ = targets_bundle
    m = read_manifest(out)
    static = create_backend("onnxruntime", m, "denoiser", static=True)
    dynamic = create_backend("onnxruntime", m, "denoiser")
    assert static.static and sorted(static.sessions) == list(BATCHES)
    inputs = example_inputs(m.role("denoiser"), 7, 3, m.num_classes)  # 4 + 3 padded to 4
    a, b = static.run(inputs)["eps"], dynamic.run(inputs)["eps"]
    assert a.shape == b.shape and np.max(np.abs(a - b)) < 1e-5
