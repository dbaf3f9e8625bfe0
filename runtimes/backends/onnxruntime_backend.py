"""ONNX Runtime: the bundle's ONNX file, execution providers configurable by name.

``inter_op_threads`` and ``execution_mode="parallel"`` are ORT's inter-op settings (independent
branches of the graph run at once). ``mode="throughput"`` (throughput.py) opens ``streams``
sessions (default one per thread given, else per core), each with ``threads // streams`` intra-op
threads (at least one), and runs a call's batch split across them on as many host threads (ORT
releases the GIL); the outputs are joined in order, so the samples are latency mode's.
"""
from __future__ import annotations

from edgegen.errors import EdgegenError
from edgegen.runtimes.backends import throughput
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
                 static: bool | None = None, mode: str = "latency", streams: int = 0, inter_op_threads: int = 0,
                 execution_mode: str = "sequential", **opts):
        super().__init__(manifest, role, precision, **opts)
        import onnxruntime as ort
        self.mode = throughput.check_mode(mode, streams)
        self.streams = (int(streams) or throughput.default_streams(threads)) if self.mode == "throughput" else 1
        if execution_mode not in ("sequential", "parallel"):
            raise EdgegenError(f"unknown onnxruntime execution_mode '{execution_mode}' (choose sequential, parallel)")
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.mode == "throughput":
            so.intra_op_num_threads = max(1, int(threads) // self.streams) if threads else 1
        elif threads:
            so.intra_op_num_threads = threads
        if inter_op_threads:
            so.inter_op_num_threads = int(inter_op_threads)
        if execution_mode == "parallel":
            so.execution_mode = ort.ExecutionMode.ORT_PARALLEL
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
            path = str(manifest.file(role, "onnx", precision))
            self.session = ort.InferenceSession(path, so, providers=self.providers)
            if self.streams > 1:  # throughput mode: one more session per stream, and a thread for each
                from concurrent.futures import ThreadPoolExecutor
                self.pool_sessions = [self.session] + [ort.InferenceSession(path, so, providers=self.providers)
                                                       for _ in range(self.streams - 1)]
                self.pool = ThreadPoolExecutor(self.streams, thread_name_prefix="edgegen-ort-stream")

    def run(self, inputs):
        arrays = self.prepare(inputs)
        if self.static:
            from edgegen.runtimes.backends.targets import run_static
            return run_static(sorted(self.sessions), arrays, lambda b, feed: dict(
                zip(self.output_names, self.sessions[b].run(self.output_names, feed))))
        batch = arrays[self.spec.inputs[0].name].shape[0]
        if self.streams > 1 and batch > 1:
            import numpy as np
            parts = list(self.pool.map(
                lambda job: job[0].run(self.output_names, {n: a[job[1]] for n, a in arrays.items()}),
                zip(self.pool_sessions, throughput.chunks(batch, self.streams))))
            return {name: np.concatenate([p[i] for p in parts]) for i, name in enumerate(self.output_names)}
        outs = self.session.run(self.output_names, arrays)
        return dict(zip(self.output_names, outs))

    def close(self) -> None:
        if getattr(self, "pool", None) is not None:
            self.pool.shutdown(wait=True)
            self.pool = None
