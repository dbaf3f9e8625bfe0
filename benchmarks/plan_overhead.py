"""Host-side cost of the Python plan loop: DDIM-50 at batch 16 with a no-op network.

    .venv/bin/python benchmarks/plan_overhead.py            # prints the median ms of 15 runs

Issue 14's note compares it across two trees (each run with its own venv) to show the
refactor of the plan ops (runtimes/plan_ops.py) and the progress callback cost nothing.
It runs against older trees too (compile_plan moved to runtimes/samplers.py).
"""
import json
import time

import numpy as np

from edgegen.runtimes.interpreter import run_plan

try:
    from edgegen.runtimes.samplers import compile_plan
    plan = compile_plan({"process": "ddpm", "schedule": {"kind": "linear", "T": 1000}, "defaults": {}},
                        "ddim", 50, eta=0.0)
except ImportError:  # trees before the typed sampler registry
    from edgegen.runtimes.plans import compile_plan
    plan = compile_plan({"process": "ddpm", "schedule": {"kind": "linear", "T": 1000}}, "ddim", 50, 0.0)


def net(x, t, y):
    return x * np.float32(0.5)


labels = np.zeros(16, np.int64)
times = []
for _ in range(15):
    t0 = time.perf_counter()
    run_plan(plan, net, (1, 16, 16), labels, 0, batch_size=16)
    times.append(time.perf_counter() - t0)
print(json.dumps({"median_ms": float(np.median(times)) * 1000}))
