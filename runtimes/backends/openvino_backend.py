"""OpenVINO: the bundle's IR, compiled once per static batch size and cached.

f32 models run in f32 (INFERENCE_PRECISION_HINT), not silently in bf16 on CPUs
that have it; static shapes are about 30% faster than a dynamic batch here. A bundle entry
may carry its own hint (``"inference_precision": "bf16"``: the gated bf16/fp16 precisions of
calibration/precision_gate.py run the fp32 IR with that hint); ``compiled_precisions`` says
what the plugin actually chose.
"""
from __future__ import annotations

from edgegen.errors import EdgegenError
from edgegen.runtimes.backends.base import Backend

DEVICES = ("CPU", "GPU", "NPU", "AUTO")


class OpenVINOBackend(Backend):
    name = "openvino"
    requires = ("openvino",)
    extra = "openvino"
    format = "openvino"

    def __init__(self, manifest, role, precision="fp32", device: str = "CPU", cache_dir: str | None = None,
                 threads: int = 0, **opts):
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
        hint = manifest.formats(role)["openvino"][precision].get("inference_precision")
        hint = hint or ("f32" if precision == "fp32" else None)
        self.config = {"INFERENCE_PRECISION_HINT": hint} if hint else {}
        if cache_dir:
            self.config["CACHE_DIR"] = str(cache_dir)
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = int(threads)
        self._compiled: dict[int, object] = {}  # batch size -> infer request
        self.output_names = [t.name for t in self.spec.outputs]

    def _request(self, batch: int):
        if batch not in self._compiled:
            model = self.core.read_model(str(self.xml))
            model.reshape({t.name: list(t.concrete(batch)) for t in self.spec.inputs})
            compiled = self.core.compile_model(model, self.device, self.config)
            self._compiled[batch] = compiled.create_infer_request()
        return self._compiled[batch]

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
        req = self._request(batch)
        res = req.infer(arrays)
        return {name: res[name].copy() for name in self.output_names}
