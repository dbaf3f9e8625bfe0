"""OpenVINO: the bundle's IR, compiled once per static batch size and cached.

f32 models run in f32 (INFERENCE_PRECISION_HINT), not silently in bf16 on CPUs
that have it; static shapes are about 30% faster than a dynamic batch here. A bundle entry
may carry its own hint (``"inference_precision": "bf16"``: the gated bf16/fp16 precisions of
calibration/precision_gate.py run the fp32 IR with that hint), and the ``inference_precision``
option overrides it (``edgegen profile --target-quality`` tries an ungated bf16 hint on the fp32 IR
and scores it itself); ``compiled_precisions`` says what the plugin actually chose.

``mode="throughput"`` (throughput.py) compiles with the THROUGHPUT hint and ``streams`` streams
(NUM_STREAMS; default one per thread given, else per core) and runs a call's batch as that many
parallel infer requests of an AsyncInferQueue, each on a model compiled for the chunk size (the
last chunk is padded to it: static shapes). The samples are latency mode's.
"""
from __future__ import annotations

from edgegen.errors import EdgegenError
from edgegen.runtimes.backends import throughput
from edgegen.runtimes.backends.base import Backend

DEVICES = ("CPU", "GPU", "NPU", "AUTO")


class OpenVINOBackend(Backend):
    name = "openvino"
    requires = ("openvino",)
    extra = "openvino"
    format = "openvino"

    def __init__(self, manifest, role, precision="fp32", device: str = "CPU", cache_dir: str | None = None,
                 threads: int = 0, mode: str = "latency", streams: int = 0, inference_precision: str | None = None,
                 **opts):
        super().__init__(manifest, role, precision, **opts)
        import openvino as ov
        self.core = ov.Core()
        device = device.upper()
        if device.split(":")[0] not in DEVICES:
            raise EdgegenError(f"unknown OpenVINO device '{device}' (choose {', '.join(DEVICES)})")
        if device != "AUTO" and device.split(".")[0] not in self.core.available_devices:
            raise EdgegenError(f"OpenVINO device '{device}' is not available here "
                               f"(available: {', '.join(self.core.available_devices)})")
        self.device = device
        self.xml = manifest.file(role, "openvino", precision)
        hint = inference_precision or manifest.formats(role)["openvino"][precision].get("inference_precision")
        hint = hint or ("f32" if precision == "fp32" else None)
        self.config = {"INFERENCE_PRECISION_HINT": hint} if hint else {}
        if cache_dir:
            self.config["CACHE_DIR"] = str(cache_dir)
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = int(threads)
        self.mode = throughput.check_mode(mode, streams)
        self.streams = 1
        if self.mode == "throughput":
            self.streams = int(streams) or throughput.default_streams(threads)
            self.config.update({"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": self.streams})
        self._compiled: dict[int, object] = {}  # batch size -> infer request
        self._queues: dict[int, object] = {}  # chunk size -> AsyncInferQueue (throughput mode)
        self.output_names = [t.name for t in self.spec.outputs]

    def _compile(self, batch: int):
        model = self.core.read_model(str(self.xml))
        model.reshape({t.name: list(t.concrete(batch)) for t in self.spec.inputs})
        return self.core.compile_model(model, self.device, self.config)

    def _request(self, batch: int):
        if batch not in self._compiled:
            self._compiled[batch] = self._compile(batch).create_infer_request()
        return self._compiled[batch]

    def _queue(self, chunk: int):
        if chunk not in self._queues:
            import openvino as ov
            queue = ov.AsyncInferQueue(self._compile(chunk), self.streams)
            self._compiled[chunk] = queue[0]  # compiled_precisions asks it
            self._queues[chunk] = queue
        return self._queues[chunk]

    def compiled_precisions(self) -> dict:
        """What the plugin chose for the models compiled so far: its INFERENCE_PRECISION_HINT
        answer and the layer count per runtime precision (Const layers left out)."""
        ran, layers = set(), {}
        for req in self._compiled.values():
            compiled = req.get_compiled_model()
            hint = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()  # f32, bf16, f16
            ran.add({"f32": "fp32", "f16": "fp16"}.get(hint, hint))
            for op in compiled.get_runtime_model().get_ordered_ops():
                info = op.get_rt_info()
                if "runtimePrecision" in info and info["layerType"].astype(str) != "Const":
                    p = info["runtimePrecision"].astype(str)
                    layers[p] = layers.get(p, 0) + 1
        return {"ran": ",".join(sorted(ran)) or None, "hint": self.config.get("INFERENCE_PRECISION_HINT"),
                "detail": {"layers_by_runtime_precision": layers}}

    def run(self, inputs):
        arrays = self.prepare(inputs)
        batch = arrays[self.spec.inputs[0].name].shape[0]
        if self.mode == "throughput" and min(self.streams, batch) > 1:
            return self._run_parallel(arrays, batch)
        req = self._request(batch)
        res = req.infer(arrays)
        return {name: res[name].copy() for name in self.output_names}

    def _run_parallel(self, arrays: dict, batch: int) -> dict:
        """Throughput mode: the batch's chunks as parallel infer requests, outputs joined in order."""
        import numpy as np
        size = throughput.chunk_size(batch, self.streams)
        queue = self._queue(size)
        parts: dict[int, dict] = {}

        def done(request, index):  # runs on OpenVINO's thread: copy before the request is reused
            parts[index] = {name: request.get_tensor(name).data.copy() for name in self.output_names}

        queue.set_callback(done)
        for i, rows in enumerate(throughput.chunks(batch, self.streams)):
            feed = {}
            for name, a in arrays.items():
                a = a[rows]
                if a.shape[0] < size:  # the last chunk, padded to the compiled size with its first row
                    a = np.concatenate([a, np.repeat(a[:1], size - a.shape[0], axis=0)])
                feed[name] = a
            queue.start_async(feed, i)
        queue.wait_all()
        n = [rows.stop - rows.start for rows in throughput.chunks(batch, self.streams)]
        return {name: np.concatenate([parts[i][name][:k] for i, k in enumerate(n)]) for name in self.output_names}
