"""The FLOP counter on graphs whose FLOPs are known by hand."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgegen.errors import EdgegenError
from edgegen.profiling.flops import count_flops


def _graph() -> onnx.ModelProto:
    """x (N,3,10,10) -> Conv 8x3x3x3 pad 1 (+bias) -> Relu -> Reshape (N,800) -> Gemm 800->10 (+C)
    -> MatMul 10->4, with a symbolic batch dimension."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(np.zeros(8, np.float32), "b"),
             numpy_helper.from_array(np.array([-1, 800], np.int64), "shape"),
             numpy_helper.from_array(rng.standard_normal((800, 10)).astype(np.float32), "g"),
             numpy_helper.from_array(np.zeros(10, np.float32), "c"),
             numpy_helper.from_array(rng.standard_normal((10, 4)).astype(np.float32), "m")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["h"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Reshape", ["r", "shape"], ["f"]),
             helper.make_node("Gemm", ["f", "g", "c"], ["o"]),
             helper.make_node("MatMul", ["o", "m"], ["y"])]
    graph = helper.make_graph(nodes, "known", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 10, 10])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("batch", [1, 3])
def test_flops_known_by_hand(batch):
    r = count_flops(_graph(), batch)
    conv = 2 * 8 * 10 * 10 * 3 * 3 * 3  # 2 * C_out * H * W * C_in * k * k
    gemm = 2 * 800 * 10
    matmul = 2 * 10 * 4
    assert r["macs_flops"] == batch * (conv + gemm + matmul)
    # other: conv bias (800 per sample), relu (800), gemm C (10)
    assert r["other_flops"] == batch * (800 + 800 + 10)
    assert r["by_op"] == {"Conv": batch * (conv + 800), "Gemm": batch * (gemm + 10), "Relu": batch * 800,
                          "MatMul": batch * matmul}
    assert r["weight_bytes"] == 4 * (8 * 27 + 8 + 8000 + 10 + 40) + 8 * 2
    assert r["unknown_ops"] == {}


def test_flops_conv_transpose_and_groups():
    w = numpy_helper.from_array(np.ones((4, 2, 2, 2), np.float32), "w")  # C_in 4, C_out/groups 2, k 2
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2], group=2)
    graph = helper.make_graph([node], "ct", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 10, 10])], [w])
    r = count_flops(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), 1)
    assert r["macs_flops"] == 2 * 4 * 25 * 2 * 4  # 2 * C_in * H_in * W_in * (C_out / groups) * k * k


def test_flops_of_exported_unet_scale_with_batch(tiny_bundle):
    onnx_path = tiny_bundle / "onnx" / "denoiser.onnx"
    one, four = count_flops(onnx_path, 1), count_flops(onnx_path, 4)
    assert one["unknown_ops"] == {} and one["macs_flops"] > 0
    assert four["flops"] == 4 * one["flops"]


def test_flops_bad_input(tmp_path):
    with pytest.raises(EdgegenError, match="no ONNX model"):
        count_flops(tmp_path / "missing.onnx")
    with pytest.raises(EdgegenError, match="batch must be positive"):
        count_flops(_graph(), 0)
