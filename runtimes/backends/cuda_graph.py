"""A whole sampler plan on the GPU, captured once in a CUDA graph and replayed per batch.

The plan (plans.py) is executed with torch ops on device tensors by the same op code as the
Python interpreter (plan_ops.apply_op with TorchOps below), in the same order.
Noise is the interpreter's too: every Philox draw of the batch is made on the host up front
(rng.py, same draw indices) and copied into static device buffers, so the samples match the
other runtimes for a seed. With everything in static buffers, the first batch of a (plan,
batch size, guidance) runs eagerly as warm-up, then the whole loop - every network call and
every op - is captured into one CUDA graph that later batches replay. Any network callable
works: the torch module (torch_backend) or a TensorRT execution context (tensorrt_backend).
On a CPU device the same code runs eagerly (that is how it is tested without a GPU).
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np

from edgegen.runtimes import rng
from edgegen.runtimes.executors import PlanRequest
from edgegen.runtimes.plan_ops import ArrayOps, apply_op
from edgegen.runtimes.plans import Plan

if TYPE_CHECKING:
    import torch

# net(x, t or None, y) -> output, all torch tensors on the device
TorchNet = Callable[..., "torch.Tensor"]


def role_net(spec, call: Callable[[dict], "torch.Tensor"]) -> TorchNet:
    """net(x, t, y) for a role: the role meta names the time and label inputs, the other is x."""
    meta = spec.meta or {}
    t_name, y_name = meta.get("time_input"), meta.get("label_input")

    def net(x, t, y):
        return call({s.name: {t_name: t, y_name: y}.get(s.name, x) for s in spec.inputs})
    return net


def noise_draws(plan: Plan) -> list[str]:
    """The register each noise draw is shaped like, in the interpreter's draw order."""
    ops = list(plan.init) + [op for step in plan.steps for op in step["ops"]]
    return [op["dst"] for op in ops if (op["op"] == "affine" and "noise" in op) or op["op"] == "langevin"]


class TorchOps(ArrayOps):
    """plan_ops on torch tensors: the float32 scalar as a Python float (exactly representable),
    per-sample norms in float64 as the numpy path."""

    def __init__(self, torch):
        self.torch = torch

    @staticmethod
    def scalar(c: float) -> float:
        return float(np.float32(c))

    @staticmethod
    def clip(a, lo: float, hi: float):
        return a.clamp(float(np.float32(lo)), float(np.float32(hi)))

    @staticmethod
    def row_norms(a):
        return a.reshape(a.shape[0], -1).double().norm(dim=1)

    @staticmethod
    def per_sample(v, like):
        return v.float().reshape((like.shape[0],) + (1,) * (like.ndim - 1))

    def sqrt(self, v):
        return self.torch.sqrt(v)

    @staticmethod
    def floor(v, lo: float):
        return v.clamp_min(lo)


class GraphPlanRunner:
    """A plan executor (executors.py) that runs every batch on the device, captured once."""
    name = "cuda-graph"

    def __init__(self, net: TorchNet, device, capture: Optional[bool] = None):
        import torch
        self.torch = torch
        self.net = net
        self.device = torch.device(device)
        self.capture = self.device.type == "cuda" if capture is None else capture
        self._graphs: dict = {}  # (plan key, batch, guidance, null) -> (graph, buffers, output)
        self.network_seconds, self.network_calls = 0.0, 0  # the executor protocol's counters

    # -- the plan in torch, on static buffers ----------------------------------------------
    def _guided(self, x, t, y, guidance: float, null_label: Optional[int]):
        torch = self.torch
        if guidance == 1.0 or null_label is None:
            return self.net(x, t, y)
        b = x.shape[0]
        out = self.net(torch.cat([x, x]), None if t is None else torch.cat([t, t]),
                       torch.cat([y, torch.full_like(y, null_label)]))
        e_c, e_u = out[:b], out[b:]
        return e_u + guidance * (e_c - e_u)

    def _execute(self, plan: Plan, bufs: dict, guidance: float, null_label: Optional[int]):
        torch = self.torch
        regs: dict = {}
        draws = iter(bufs["noise"])  # the precomputed Philox draws, in the interpreter's order

        def noise(register: str):
            return next(draws)
        ops = TorchOps(torch)
        for op in plan.init:
            apply_op(op, regs, noise, ops)
        y = bufs["y"]
        for step in plan.steps:
            t = None if step["t"] is None else torch.full((y.shape[0],), float(np.float32(step["t"])),
                                                          device=self.device)
            regs[step["dst"]] = self._guided(regs[step["src"]], t, y, guidance, null_label)
            for op in step["ops"]:
                apply_op(op, regs, noise, ops)
        return regs[plan.output]

    # -- batches -------------------------------------------------------------------------------
    def _buffers(self, plan: Plan, shape: tuple, labels: np.ndarray, seed: int, first: int, bufs=None) -> dict:
        torch = self.torch
        host = [rng.gaussian(seed, (shape[0], *plan.shapes[r]) if plan.shapes and r in plan.shapes else shape,
                             draw=i, stream=rng.STREAM_NOISE, first_sample=first)
                for i, r in enumerate(noise_draws(plan))]
        y = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64))
        if bufs is None:
            return {"noise": [torch.from_numpy(z).to(self.device) for z in host], "y": y.to(self.device)}
        for dst, z in zip(bufs["noise"], host):
            dst.copy_(torch.from_numpy(z), non_blocking=False)
        bufs["y"].copy_(y)
        return bufs

    def run_batch(self, plan: Plan, shape: tuple, labels: np.ndarray, seed: int, first: int,
                  guidance: float, null_label: Optional[int]) -> np.ndarray:
        torch = self.torch
        key = (plan.key, shape, guidance, null_label)
        with torch.inference_mode():
            if key in self._graphs:
                graph, bufs, out = self._graphs[key]
                self._buffers(plan, shape, labels, seed, first, bufs)
                graph.replay()
                return out.cpu().numpy()
            bufs = self._buffers(plan, shape, labels, seed, first)
            if not self.capture:
                return self._execute(plan, bufs, guidance, null_label).cpu().numpy()
            side = torch.cuda.Stream()  # warm-up off the default stream, as capture requires
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                result = self._execute(plan, bufs, guidance, null_label).cpu().numpy()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(graph):
                    out = self._execute(plan, bufs, guidance, null_label)
            except RuntimeError:  # a network that cannot be captured: stay eager for this key
                self.capture = False
                return result
            self._graphs[key] = (graph, bufs, out)
            return result

    def execute(self, plan: Plan, req: PlanRequest) -> np.ndarray:
        """The executor protocol (executors.py): whole batches on the device; progress per batch."""
        n = len(req.labels)
        out_dims = tuple((plan.shapes or {}).get(plan.output, req.sample_shape))
        out = np.empty((n, *out_dims), dtype=np.float32)
        progress = req.progress(-(-n // req.batch_size) * len(plan.steps))
        t0 = time.perf_counter()
        for start in range(0, n, req.batch_size):
            stop = min(n, start + req.batch_size)
            out[start:stop] = self.run_batch(plan, (stop - start, *req.sample_shape), req.labels[start:stop],
                                             int(req.seed), start, req.guidance, req.null_label)
            progress.step(len(plan.steps))
        self.network_seconds += time.perf_counter() - t0  # the whole loop runs on the device
        self.network_calls += len(plan.steps) * (-(-n // req.batch_size))
        return out
