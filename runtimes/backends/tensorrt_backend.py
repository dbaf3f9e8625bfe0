"""TensorRT: an engine built from the bundle's ONNX for this GPU (cached), static device buffers.

Input and output buffers are allocated once at the profile's largest batch; a call copies into
their leading rows, sets the input shapes and enqueues the engine. Whole plans go through
cuda_graph.py with this engine as the network, so the sampling loop is one CUDA graph
(TensorRT's enqueue can be captured once the shapes are set).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from edgegen.runtimes.backends.base import Backend
from edgegen.runtimes.backends.targets import target_entry

from edgegen.errors import EdgegenError

TORCH_DTYPES = {"float32": "float32", "float16": "float16", "int64": "int64", "int32": "int32"}


class TensorRTBackend(Backend):
    name = "tensorrt"
    requires = ("tensorrt", "torch")
    format = "tensorrt"

    def __init__(self, manifest, role, precision="fp32", cuda_graph: bool = True, cache_dir: Optional[str] = None,
                 **opts):
        super().__init__(manifest, role, precision, **opts)
        import tensorrt as trt
        import torch
        from edgegen.runtimes.backends.tensorrt_engine import cached_engine
        entry = target_entry(manifest, role, "tensorrt", precision)
        from edgegen.trust import check_code  # engines/plugins shipped in a bundle are code (trust.py)
        check_code(manifest, role, "tensorrt", precision, bool(opts.get("trust_code")))
        calib = entry.get("calibration_cache")
        path = cached_engine(manifest.root / entry["path"], precision, entry["profile"], entry["input_dims"],
                             entry.get("workspace_mib", 1024),
                             (manifest.root / calib).read_bytes() if calib else None, cache_dir)
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(self.logger).deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise EdgegenError(f"TensorRT could not load the engine {path} (built by another version?)")
        self.context = self.engine.create_execution_context()
        self.torch, self.device = torch, torch.device("cuda")
        self.max_batch = int(entry["profile"]["batch"][2])
        dims = {d: hi for d, (_, _, hi) in entry["profile"].items()}
        self.buffers = {}  # name -> device tensor at the largest shape (static addresses)
        for t in (*self.spec.inputs, *self.spec.outputs):
            shape = [dims[d] if isinstance(d, str) else int(d) for d in t.shape]
            self.buffers[t.name] = torch.empty(shape, dtype=getattr(torch, TORCH_DTYPES[t.dtype]), device=self.device)
            self.context.set_tensor_address(t.name, self.buffers[t.name].data_ptr())
        self._graph = None
        if cuda_graph:
            from edgegen.runtimes.backends.cuda_graph import GraphPlanRunner, role_net
            out = self.spec.outputs[0].name  # clone: the output buffer is reused by the next call
            self._graph = GraphPlanRunner(role_net(self.spec, lambda named: self._enqueue(named)[out].clone()),
                                          self.device)

    def plan_executor(self):
        return self._graph

    @classmethod
    def unavailable(cls) -> Optional[str]:
        from edgegen.runtimes.backends.tensorrt_engine import tensorrt_reason
        return tensorrt_reason()

    def _enqueue(self, named: dict):
        """Run the engine on device tensors (rows <= max batch); returns views of the output buffers."""
        torch = self.torch
        n = next(iter(named.values())).shape[0]
        if n > self.max_batch:
            raise EdgegenError(f"batch {n} is larger than the engine's profile allows ({self.max_batch})")
        for t in self.spec.inputs:
            a = named[t.name]
            self.buffers[t.name].view(-1)[:a.numel()].copy_(a.reshape(-1))
            self.context.set_input_shape(t.name, tuple(a.shape))
        if not self.context.execute_async_v3(torch.cuda.current_stream().cuda_stream):
            raise EdgegenError("TensorRT execution failed (see its log)")
        return {t.name: self.buffers[t.name].view(-1)[:int(np.prod(self.context.get_tensor_shape(t.name)))]
                .view(tuple(self.context.get_tensor_shape(t.name))) for t in self.spec.outputs}

    def run(self, inputs):
        torch = self.torch
        arrays = self.prepare(inputs)
        with torch.inference_mode():
            outs = self._enqueue({k: torch.from_numpy(v).to(self.device) for k, v in arrays.items()})
            return {k: v.float().cpu().numpy() if v.dtype == torch.float16 else v.cpu().numpy()
                    for k, v in outs.items()}
