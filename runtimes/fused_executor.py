"""The fused executor: a whole sampler plan as ONE graph (export/fused_export.py builds it).

The graph takes every Philox noise draw of a batch as one input, ``noise`` (draws, B, *sample
shape), computed on the host exactly as the interpreter draws them (rng.py: same seed, sample
index and draw counter), and the labels ``y`` (B,); it returns the samples. There is no host
loop: the runtime sees every network call and every plan op at once and schedules them itself.

A fused graph is built for one plan; ``plan_digest`` names that plan's exact content, and the
executor refuses any other plan (the graph would silently run the wrong sampler otherwise).
Engines: onnxruntime (the ONNX file) and openvino (the same ONNX file read by its ONNX frontend,
compiled once per batch size). Like the CUDA-graph executor it reports progress per batch.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Optional

import numpy as np

from edgegen.errors import EdgegenError
from edgegen.runtimes import rng
from edgegen.runtimes.backends.base import Backend
from edgegen.runtimes.executors import PlanRequest
from edgegen.runtimes.plans import Plan

ENGINES = ("onnxruntime", "openvino")
NOISE, LABELS, OUTPUT = "noise", "y", "samples"  # the fused graph's input and output names


def plan_digest(plan: Plan) -> str:
    """sha256 of the plan's JSON (sorted keys): the plan a fused graph was built from."""
    return hashlib.sha256(json.dumps(plan.to_json(), sort_keys=True).encode()).hexdigest()


def noise_registers(plan: Plan) -> list[str]:
    """The register each noise draw is shaped like, in the interpreter's draw order."""
    from edgegen.runtimes.backends.cuda_graph import noise_draws  # one definition (no torch import)
    return noise_draws(plan)


def batch_noise(plan: Plan, shape: tuple, seed: int, first: int) -> np.ndarray:
    """(draws, B, *sample shape) float32: every draw of one batch, as the interpreter makes them."""
    regs = noise_registers(plan)
    if not regs:
        return np.zeros((0, *shape), dtype=np.float32)
    return np.stack([rng.gaussian(seed, shape, draw=i, stream=rng.STREAM_NOISE, first_sample=first)
                     for i in range(len(regs))])


class FusedExecutor:
    """The executor protocol (executors.py) over a fused plan graph."""
    name = "fused"

    def __init__(self, path: Path, digest: str, engine: str = "onnxruntime", threads: int = 0,
                 plan_key: str = "?"):
        if engine not in ENGINES:
            raise EdgegenError(f"unknown fused-graph engine '{engine}' (choose {', '.join(ENGINES)})")
        self.path, self.digest, self.engine, self.plan_key = Path(path), digest, engine, plan_key
        self.network_seconds, self.network_calls = 0.0, 0
        if engine == "onnxruntime":
            import onnxruntime as ort
            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if threads:
                so.intra_op_num_threads = threads
            self.session = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
        else:
            import openvino as ov
            self.core = ov.Core()
            self.config = {"INFERENCE_PRECISION_HINT": "f32"}
            if threads:
                self.config["INFERENCE_NUM_THREADS"] = int(threads)
            self._requests: dict = {}

    def _run(self, noise: np.ndarray, y: np.ndarray) -> np.ndarray:
        if self.engine == "onnxruntime":
            return self.session.run([OUTPUT], {NOISE: noise, LABELS: y})[0]
        b = y.shape[0]
        if b not in self._requests:  # static shapes per batch size, as the openvino backend does
            model = self.core.read_model(str(self.path))
            model.reshape({NOISE: list(noise.shape), LABELS: [b]})
            self._requests[b] = self.core.compile_model(model, "CPU", self.config).create_infer_request()
        res = self._requests[b].infer({NOISE: noise, LABELS: y})
        return res[OUTPUT].copy()

    def execute(self, plan: Plan, req: PlanRequest) -> np.ndarray:
        if plan_digest(plan) != self.digest:
            raise EdgegenError(f"this fused graph runs plan {self.plan_key}; asked for {plan.key} (a fused graph "
                               "is built per plan: export one for it, or use a backend without --fused)")
        if req.guidance != 1.0 and req.null_label is not None:
            raise EdgegenError("the fused graph runs without classifier-free guidance (guidance 1)")
        if req.inputs or req.context is not None or req.on_eval is not None:
            raise EdgegenError("the fused graph takes no image inputs, text context or per-call hooks")
        n = len(req.labels)
        out = np.empty((n, *req.sample_shape), dtype=np.float32)
        progress = req.progress(-(-n // req.batch_size) * len(plan.steps))
        for start in range(0, n, req.batch_size):
            stop = min(n, start + req.batch_size)
            noise = batch_noise(plan, (stop - start, *req.sample_shape), int(req.seed), start)
            y = np.ascontiguousarray(req.labels[start:stop], dtype=np.int64)
            t0 = time.perf_counter()
            out[start:stop] = self._run(noise, y)
            self.network_seconds += time.perf_counter() - t0  # network and plan ops run inside the graph
            self.network_calls += len(plan.steps)
            progress.step(len(plan.steps))
        return out


class FusedBackend(Backend):
    """A backend that only runs whole plans, through the fused graph of one plan.

    ``graph`` (path) and ``digest`` name the graph; without them the bundle's ``fused`` entry of
    this precision is used (``plans``: plan key -> {"path", "digest"}), for ``plan`` (a key) or its
    only plan. ``engine``: onnxruntime or openvino."""
    name = "fused"
    format = "fused"
    requires = ("onnxruntime",)
    single_calls = False

    def __init__(self, manifest, role, precision="fp32", engine: str = "onnxruntime", graph=None,
                 digest: Optional[str] = None, plan: Optional[str] = None, threads: int = 0, **opts):
        super().__init__(manifest, role, precision, **opts)
        key = plan or "?"
        if graph is None:
            manifest.file(role, "fused", precision)  # one line when the bundle has none
            plans = manifest.formats(role)["fused"][precision]["plans"]
            key = plan if plan is not None else next(iter(plans)) if len(plans) == 1 else None
            if key not in plans:
                raise EdgegenError(f"the bundle's fused graphs are for plans {', '.join(plans)}: name one (plan=)")
            graph, digest = manifest.root / plans[key]["path"], plans[key]["digest"]
        if digest is None:
            raise EdgegenError("a fused graph needs the digest of the plan it was built from")
        self.executor = FusedExecutor(Path(graph), digest, engine, threads, key)

    def plan_executor(self):
        return self.executor

    def run(self, inputs):
        raise EdgegenError("the fused backend runs whole plans only (no single network calls)")
