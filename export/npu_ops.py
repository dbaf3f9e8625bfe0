"""Operator support of the NPU targets, as data, and the check of a static variant against it.

ONNX Runtime QNN execution provider (Qualcomm HTP): the ONNX op types the EP has an op builder
for, transcribed from onnxruntime ``onnxruntime/core/providers/qnn/builder/op_builder_factory.cc``
(microsoft/onnxruntime at commit 00cd7c6df0a66cd628a5ab7e682cb870134a27ee, read 2026-11-24 with
the search tool; the docs page https://onnxruntime.ai/docs/execution-providers/QNN-ExecutionProvider
"Supported ONNX operators" points to the same set). A listed op can still be refused for a
particular node by the builder's own checks (data type, rank, attributes) when the session is
created on the device; a node the QNN EP does not take runs on the CPU EP fallback, so an
unsupported op is a warning (the model still runs), never an export failure.

Intel NPU (OpenVINO ``NPU`` device): no public per-op support list was found (2026-11-24: the
OpenVINO "Supported Operations" pages give device conformance reports for CPU/GPU, and the
"Supported Devices" table says the NPU has no dynamic shapes). What is checked here is that
the IR is fully static; the per-op check is ``Core.query_model(model, "NPU")`` on that hardware.
"""
from __future__ import annotations

QNN_SOURCE = ("onnxruntime/core/providers/qnn/builder/op_builder_factory.cc @ microsoft/onnxruntime "
              "00cd7c6df0a66cd628a5ab7e682cb870134a27ee (read 2026-11-24)")
INTEL_NPU_NOTE = ("no public per-op list for the Intel NPU (OpenVINO docs, 2026-11-24); IR checked fully "
                  "static, per-op support is Core.query_model(model, 'NPU') on the device")

QNN_OPS = frozenset("""
Abs Add And ArgMax ArgMin Asin Atan AveragePool BatchNormalization Cast Ceil Clip Concat Conv ConvTranspose
Cos CumSum DepthToSpace DequantizeLinear Div Einsum Elu Equal Exp Expand Flatten Floor Gather GatherElements
GatherND Gelu Gemm GlobalAveragePool GlobalMaxPool Greater GreaterOrEqual GridSample HardSigmoid HardSwish
InstanceNormalization Inverse LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax LpNormalization LRN
LSTM MatMul Max MaxPool Mean Min Mod Mul Neg Not Or Pad Pow PRelu QuantizeLinear RandomUniformLike Reciprocal
ReduceL2 ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum Relu Reshape Resize RMSNormalization Round
ScatterElements ScatterND Sigmoid Sign Sin Slice Softmax SpaceToDepth Split Sqrt Squeeze STFT Sub Sum Tanh
ThresholdedRelu Tile TopK Transpose Unsqueeze Upsample Where
""".split())
QNN_MS_OPS = frozenset({"FusedMatMul"})  # the one com.microsoft op in the same factory


def qnn_check(model) -> dict:
    """Every node of ``model`` (an onnx.ModelProto) against the QNN EP op list."""
    ops: dict[str, int] = {}
    unsupported = set()
    for node in model.graph.node:
        domain = node.domain or "ai.onnx"
        name = node.op_type if domain == "ai.onnx" else f"{domain}.{node.op_type}"
        ops[name] = ops.get(name, 0) + 1
        known = QNN_OPS if domain == "ai.onnx" else QNN_MS_OPS if domain == "com.microsoft" else frozenset()
        if node.op_type not in known:
            unsupported.add(name)
    out = {"ep": "QNNExecutionProvider (HTP)", "source": QNN_SOURCE, "nodes": len(model.graph.node),
           "ops": dict(sorted(ops.items())), "unsupported": sorted(unsupported)}
    if unsupported:
        out["warning"] = (f"ops not in the QNN EP list, they run on the CPU EP fallback: "
                          f"{', '.join(sorted(unsupported))}")
    return out
