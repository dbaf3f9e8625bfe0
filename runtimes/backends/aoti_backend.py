"""``torch-aoti``: the bundle's AOTInductor package (``aoti/<role>.pt2``), loaded in-process.

The package holds a compiled shared library with the weights; no Python model code and no
compiler is needed to run it, only the torch runtime it was compiled with.
"""
from __future__ import annotations

import platform

from edgegen.runtimes.backends.base import Backend
from edgegen.runtimes.backends.targets import check_requires, gpu_reason, target_entry

from edgegen.errors import EdgegenError


class AOTIBackend(Backend):
    name = "torch-aoti"
    requires = ("torch",)
    extra = "train"
    format = "aoti"

    def __init__(self, manifest, role, precision="fp32", **opts):
        super().__init__(manifest, role, precision, **opts)
        import torch
        entry = target_entry(manifest, role, "aoti", precision)
        check_requires(entry, "AOTInductor")
        from edgegen.trust import check_code  # a .pt2 is native code: trusted, built here, or refused
        check_code(manifest, role, "aoti", precision, bool(opts.get("trust_code")))
        want = entry.get("requires", {}).get("torch")
        if want and want.split("+")[0] != torch.__version__.split("+")[0]:
            raise EdgegenError(f"this AOTInductor package was compiled with torch {want}, "
                               f"this machine has {torch.__version__}")
        self.device = torch.device(entry.get("device", "cpu"))
        if self.device.type == "cuda" and gpu_reason("this package"):
            raise EdgegenError(gpu_reason("this AOTInductor package"))
        try:
            self.runner = torch._inductor.aoti_load_package(str(manifest.file(role, "aoti", precision)))
        except Exception as e:  # a package for another platform or torch: keep the first line
            raise EdgegenError(f"cannot load AOTInductor package on {platform.machine()}: "
                               f"{str(e).strip().splitlines()[0]}") from e

    def run(self, inputs):
        import torch
        arrays = self.prepare(inputs)
        with torch.inference_mode():
            outs = self.runner(*[torch.from_numpy(arrays[t.name]).to(self.device) for t in self.spec.inputs])
        outs = outs if isinstance(outs, (tuple, list)) else (outs,)
        return {t.name: o.cpu().numpy() for t, o in zip(self.spec.outputs, outs)}
