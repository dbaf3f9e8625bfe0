"""The eager PyTorch reference backend: the family's network rebuilt from the bundle's config.

It lives with the training code because rebuilding a network needs the family's definition;
the runtime finds it through the ``edgegen.backends`` entry point (pyproject.toml), so an app
with only the runtime installed never imports torch or this module."""
from __future__ import annotations

import torch

from edgegen.config import from_dict
from edgegen.runtimes.backends.base import Backend


def build_role_module(manifest, role: str, trust_code: bool = False) -> torch.nn.Module:
    """Rebuild ``role`` from the bundle's training config and load its safetensors weights.

    ``trust_code`` (the backend option, ``--trust-code``): a family whose ``build`` runs Python source
    stored in the bundle (diffusers, pipeline ``module``: a user's own nn.Module) runs it without its
    sha256 being on this machine's allow-list (edgegen/trust.py), as for the other code-bearing formats."""
    import inspect

    from edgegen.train.families import get_family
    from edgegen.train.runs import load_state
    family = get_family(manifest.family)
    cfg = from_dict(type(family.preset(family.PRESETS[0])), manifest.data["training"]["config"])
    trusted = {"trusted": True} if trust_code and "trusted" in inspect.signature(family.build).parameters else {}
    base = (manifest.role(role).meta or {}).get("static_of")
    if base:  # a static-shape step role (static_kv.py): the step network's module, wrapped
        from edgegen.train.static_kv import StaticStep
        module = StaticStep(family.build(cfg, **trusted)[base])
    else:
        module = family.build(cfg, **trusted)[role]
    load_state({role: module}, manifest.file(role, "torch", "fp32"))
    return module


class TorchBackend(Backend):
    name = "torch"
    requires = ("torch",)
    extra = "train"
    format = "torch"

    def __init__(self, manifest, role, precision="fp32", device: str = "cpu", module=None, cuda_graph: bool = True,
                 **opts):
        super().__init__(manifest, role, precision, **opts)
        self.device = torch.device(device)
        self.module = (module if module is not None else
                       build_role_module(manifest, role, bool(opts.get("trust_code")))).to(self.device).eval()
        self._graph = None
        if self.device.type == "cuda" and cuda_graph:  # the whole plan in one CUDA graph (cuda_graph.py)
            from edgegen.runtimes.backends.cuda_graph import GraphPlanRunner, role_net
            net = role_net(self.spec, lambda named: self.module(*[named[s.name] for s in self.spec.inputs]))
            self._graph = GraphPlanRunner(net, self.device)

    def plan_executor(self):
        return self._graph

    @torch.inference_mode()
    def run(self, inputs):
        arrays = self.prepare(inputs)
        args = [torch.from_numpy(arrays[t.name]).to(self.device) for t in self.spec.inputs]
        outs = self.module(*args)
        outs = outs if isinstance(outs, (tuple, list)) else (outs,)
        return {t.name: o.float().cpu().numpy() if t.dtype == "float32" else o.cpu().numpy()
                for t, o in zip(self.spec.outputs, outs)}
