"""A whole sampler plan on the GPU, captured once in a CUDA graph and replayed per batch.

The plan (plans.py) is executed with torch ops on device tensors: the same affine/clip/
langevin ops as the Python interpreter (interpreter.py, the reference), in the same order.
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


class GraphPlanRunner:
    def __init__(self, net: TorchNet, device, capture: Optional[bool] = None):
        import torch
        self.torch = torch
        self.net = net
        self.device = torch.device(device)
        self.capture = self.device.type == "cuda" if capture is None else capture
        self._graphs: dict = {}  # (plan key, batch, guidance, null) -> (graph, buffers, output)

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

    def _op(self, op: dict, regs: dict, noise: list, k: int) -> int:
        torch = self.torch
        kind = op["op"]
        if kind == "affine":
            acc = None
            for name, c in op["terms"]:
                term = float(np.float32(c)) * regs[name]
                acc = term if acc is None else acc + term
            if "noise" in op:
                z = float(np.float32(op["noise"])) * noise[k]
                k += 1
                acc = z if acc is None else acc + z
            regs[op["dst"]] = acc
        elif kind == "clip":
            regs[op["dst"]] = regs[op["dst"]].clamp(float(np.float32(op["lo"])), float(np.float32(op["hi"])))
        elif kind == "langevin":
            x, z = regs[op["dst"]], noise[k]
            k += 1
            score = float(np.float32(op["scale"])) * regs[op["score"]]
            b = x.shape[0]
            s_norm = score.reshape(b, -1).double().norm(dim=1)
            z_norm = z.reshape(b, -1).double().norm(dim=1)
            step = 2.0 * op["alpha"] * (op["snr"] * z_norm / s_norm.clamp_min(1e-30)) ** 2
            shape = (b,) + (1,) * (x.ndim - 1)
            regs[op["dst"]] = (x + step.float().reshape(shape) * score
                               + torch.sqrt(2.0 * step).float().reshape(shape) * z)
        else:
            raise ValueError(f"unknown plan op {kind!r}")
        return k

    def _execute(self, plan: Plan, bufs: dict, guidance: float, null_label: Optional[int]):
        torch = self.torch
        regs: dict = {}
        k = 0
        for op in plan.init:
            k = self._op(op, regs, bufs["noise"], k)
        y = bufs["y"]
        for step in plan.steps:
            t = None if step["t"] is None else torch.full((y.shape[0],), float(np.float32(step["t"])),
                                                          device=self.device)
            regs[step["dst"]] = self._guided(regs[step["src"]], t, y, guidance, null_label)
            for op in step["ops"]:
                k = self._op(op, regs, bufs["noise"], k)
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

    def run_plan(self, plan: dict, labels: np.ndarray, seed: int, batch_size: int, guidance: float,
                 null_label: Optional[int], sample_shape) -> tuple[np.ndarray, dict]:
        """Pipeline.sample's whole-plan hook (the native backend's signature)."""
        p = Plan.from_json(plan)
        n = len(labels)
        out_dims = tuple((p.shapes or {}).get(p.output, sample_shape))
        out = np.empty((n, *out_dims), dtype=np.float32)
        t0 = time.perf_counter()
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            out[start:stop] = self.run_batch(p, (stop - start, *sample_shape), labels[start:stop], int(seed), start,
                                             1.0 if guidance is None or np.isnan(guidance) else float(guidance),
                                             null_label)
        seconds = time.perf_counter() - t0
        calls = len(p.steps) * (-(-n // batch_size))
        return out, {"total_seconds": seconds, "network_seconds": seconds, "network_calls": calls}
