"""ONNX Runtime: the bundle's ONNX file, execution providers configurable by name."""
from __future__ import annotations

from edgegen.errors import EdgegenError
from edgegen.runtimes.backends.base import Backend

PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider",
    "qnn": "QNNExecutionProvider", "coreml": "CoreMLExecutionProvider", "openvino": "OpenVINOExecutionProvider",
    "dml": "DmlExecutionProvider", "xnnpack": "XnnpackExecutionProvider",
}


def resolve_providers(names) -> list[str]:
    """Short or full provider names -> full names; a clear error when one is not installed."""
    import onnxruntime as ort
    installed = ort.get_available_providers()
    out = []
    for name in names or ["cpu"]:
        full = PROVIDER_ALIASES.get(name.lower(), name)
        if full not in installed:
            raise EdgegenError(f"onnxruntime execution provider '{name}' is not available in this "
                               f"onnxruntime build (installed: {', '.join(installed)})")
        out.append(full)
    return out


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    requires = ("onnxruntime",)
    format = "onnx"

    def __init__(self, manifest, role, precision="fp32", providers=None, threads: int = 0,
                 static: bool | None = None, **opts):
        super().__init__(manifest, role, precision, **opts)
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            so.intra_op_num_threads = threads
        self.providers = resolve_providers(providers)
        self.output_names = [t.name for t in self.spec.outputs]
        # NPU execution providers (QNN) need static shapes: the bundle's npu variants, one per batch size
        npu = manifest.formats(role).get("npu", {}).get(precision)
        self.static = bool(npu) and (static if static is not None else "QNNExecutionProvider" in self.providers)
        if static and not npu:
            manifest.file(role, "npu", precision)  # one line: the bundle has no npu export
        if self.static:
            self.sessions = {int(b): ort.InferenceSession(str(manifest.root / rel), so, providers=self.providers)
                             for b, rel in npu["static_batches"]["onnx"].items()}
        else:
            self.session = ort.InferenceSession(str(manifest.file(role, "onnx", precision)), so,
                                                providers=self.providers)

    def run(self, inputs):
        arrays = self.prepare(inputs)
        if self.static:
            from edgegen.runtimes.backends.targets import run_static
            return run_static(sorted(self.sessions), arrays, lambda b, feed: dict(
                zip(self.output_names, self.sessions[b].run(self.output_names, feed))))
        outs = self.session.run(self.output_names, arrays)
        return dict(zip(self.output_names, outs))
