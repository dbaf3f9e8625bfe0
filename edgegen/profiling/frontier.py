"""The time-to-quality frontier's shared pieces: plan names, the quality budget, interleaved timing.

Used by ``edgegen profile --target-quality`` (target_quality.py) and benchmarks/frontier.py, so the
budget and the way a configuration is named and timed are written once.

A plan name is ``SAMPLER-STEPS``; ``dpmpp_2m:noclip-10`` is DPM-Solver++(2M) without x0 clipping
(diffusers' default, a peer's configuration). The budget is the issue's: FID within 10% and class
accuracy within 1 point of the fp32 DDIM-50 reference, scored by the same evaluator on the same
seed and number of samples.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from edgegen.errors import EdgegenError

FID_RISE, ACC_DROP_POINTS = 0.10, 1.0
REFERENCE = "ddim-50"


def parse_plan(name: str) -> tuple[str, int]:
    """``"dpmpp_2m:noclip-10"`` -> ("dpmpp_2m:noclip", 10); a one-line error otherwise."""
    sampler, _, steps = name.strip().rpartition("-")
    if not sampler or not steps.isdigit() or int(steps) <= 0:
        raise EdgegenError(f"a plan is SAMPLER-STEPS (e.g. dpmpp_2m-10, dpmpp_2m:noclip-10), got '{name}'")
    return sampler, int(steps)


def plan_options(sampler: str, steps: int) -> dict:
    """The ``sample()`` options of a plan name: "dpmpp_2m:noclip" is DPM-Solver++(2M) with
    ``clip_x0=False``."""
    name, _, flag = sampler.partition(":")
    if flag not in ("", "noclip"):
        raise EdgegenError(f"unknown sampler flag ':{flag}' in '{sampler}' (only ':noclip')")
    return {"sampler": name, "steps": int(steps), **({"clip_x0": False} if flag == "noclip" else {})}


@dataclass
class Budget:
    """Quality allowed to be lost against the reference: FID rise (fraction) and accuracy drop
    (percentage points)."""
    fid_rise: float = FID_RISE
    acc_drop_points: float = ACC_DROP_POINTS

    def limits(self, ref: dict) -> dict:
        """{"max_fid", "min_accuracy"} for reference scores ``ref`` ({"fid", "accuracy"})."""
        acc = ref.get("accuracy")
        return {"max_fid": (1 + self.fid_rise) * ref["fid"],
                "min_accuracy": None if acc is None else acc - self.acc_drop_points / 100}

    def within(self, q: dict, ref: dict) -> bool:
        lim = self.limits(ref)
        ok = q["fid"] <= lim["max_fid"]
        if lim["min_accuracy"] is not None and q.get("accuracy") is not None:
            ok = ok and q["accuracy"] >= lim["min_accuracy"]
        return bool(ok)


def timed(run: Callable[[], object], batch: int, repeats: int) -> dict:
    """``repeats`` runs of ``run`` (one batch each): median and best per-sample milliseconds."""
    walls = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        walls.append(time.perf_counter() - t0)
    return {"per_sample_ms": 1000 * float(np.median(walls)) / batch, "runs": len(walls),
            "min_per_sample_ms": 1000 * float(np.min(walls)) / batch}


def interleaved(runs: dict, batch: int, rounds: int, tick: Optional[Callable[[str], None]] = None) -> dict:
    """name -> {"per_sample_ms", "min_per_sample_ms", "runs"}: one run of each per round, so a change
    of the machine's load during the measurement hits them alike. ``tick(name)`` after every run (a
    progress bar)."""
    walls: dict = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run()
            walls[name].append(time.perf_counter() - t0)
            if tick:
                tick(name)
    return {name: {"per_sample_ms": 1000 * float(np.median(w)) / batch, "runs": len(w),
                   "min_per_sample_ms": 1000 * float(np.min(w)) / batch} for name, w in walls.items()}
