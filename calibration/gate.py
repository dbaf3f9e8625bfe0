"""The quality gate of a quantized model, against the fp32 model on the same backend.

- Trajectory drift: the generator's gate trajectory (its "gate" settings) from the same noise,
  seed and labels; max and mean absolute difference of the final samples.
- Sample quality: FID and class accuracy of ``n`` samples, fp32 and quantized from the same seed,
  measured by a ``Scorer`` the caller passes in (the CLI passes edgegen.train.evaluate's; this layer
  never imports training code). Without a scorer (moons, or no evaluator) drift is the gate.
  Prompt models (latent text-to-image) are prompted by the scorer with held-out caption templates,
  so the accuracy is prompt accuracy and the FID the data set's (fashion-FID, digit-FID); the
  scorer's ``metrics`` names and ``prompts`` are carried into the result. The drift trajectory
  prompts with the bundle's stored label prompts (labels cycled), as calibration recorded.
- Speed: the median time of one network call at a fixed batch (``speed_batch``), fp32 and
  quantized, in this process (the `edgegen profile` command gives the full picture).

``passed`` when every measured quantity is within the Budget.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable, Optional

import numpy as np

from edgegen.errors import EdgegenError
from edgegen.runtimes.api import Pipeline

DRIFT_SEED = 1234
# scorer(pipe, n=, seed=, sampler=, steps=, batch_size=, progress=) -> {"fid": float, "accuracy": float|None, ...}
Scorer = Callable[..., dict]


@dataclass(frozen=True)
class Budget:
    max_accuracy_drop_points: Optional[float] = 2.0  # percentage points of class accuracy
    max_fid_rise: Optional[float] = 0.15  # relative: 0.15 = FID may rise 15%
    max_drift_mean_abs: Optional[float] = 0.1  # mean |x_int8 - x_fp32| of final samples (data range [-1, 1])

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class GateSettings:
    n: int = 500  # samples for FID/accuracy
    drift_n: int = 16  # trajectories for the drift
    seed: int = 0
    batch_size: int = 100
    speed_batch: int = 16
    speed_calls: int = 10
    threads: int = 1


def _plan_kw(manifest) -> dict:
    from edgegen.export.parity import gate_trajectory
    return gate_trajectory(manifest.generator)


def network_ms(pipe: Pipeline, batch: int, calls: int) -> float:
    """Median milliseconds of one network call on a recorded-like input of ``batch`` rows."""
    from edgegen.export.example_inputs import example_inputs
    m = pipe.manifest
    inputs = example_inputs(pipe.backend.spec, batch, 0, m.num_classes)
    pipe.backend.run(inputs)  # warm-up (OpenVINO compiles per batch size)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        pipe.backend.run(inputs)
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


class Reference:
    """What the fp32 pipeline produced, measured once per backend."""

    def __init__(self, pipe: Pipeline, settings: GateSettings, scorer: Optional[Scorer] = None,
                 progress: bool = False, no_scorer_reason: str = "no quality scorer given: drift is the gate"):
        self.settings = settings
        self.scorer, self.no_scorer_reason = scorer, no_scorer_reason
        kw = _plan_kw(pipe.manifest)
        self.drift_kw = kw
        self.trajectory = pipe.sample(settings.drift_n, seed=DRIFT_SEED, **kw)
        self.scores, self.quality_reason = _quality(pipe, settings, scorer, progress, no_scorer_reason)
        self.speed_ms = network_ms(pipe, settings.speed_batch, settings.speed_calls)


def _quality(pipe: Pipeline, s: GateSettings, scorer: Optional[Scorer], progress: bool, reason: str = ""):
    if scorer is None:
        return None, reason or "no quality scorer given: drift is the gate"
    kw = _plan_kw(pipe.manifest)
    scores = scorer(pipe, n=s.n, seed=s.seed, sampler=kw["sampler"], steps=kw.get("steps"),
                    batch_size=s.batch_size, progress=progress)
    out = {"fid": scores["fid"], "accuracy": scores["accuracy"]}
    out.update({k: scores[k] for k in ("metrics", "prompts") if scores.get(k) is not None})
    return out, None


def measure(pipe: Pipeline, ref: Reference, budget: Budget, progress: bool = False, quality: bool = True) -> dict:
    """Gate one quantized pipeline against ``ref``; ``quality=False`` measures drift only (cheap)."""
    s = ref.settings
    traj = pipe.sample(s.drift_n, seed=DRIFT_SEED, **ref.drift_kw)
    diff = np.abs(traj.astype(np.float64) - ref.trajectory)
    out = {"backend": pipe.backend.name, "precision": pipe.backend.precision,
           "drift": {"trajectory": f"{ref.drift_kw['sampler']}-{ref.drift_kw.get('steps')}", "n": s.drift_n,
                     "max_abs": float(diff.max()), "mean_abs": float(diff.mean())}}
    checks = []
    if budget.max_drift_mean_abs is not None:
        checks.append(out["drift"]["mean_abs"] <= budget.max_drift_mean_abs)
    if quality and ref.scores is not None:
        q, _ = _quality(pipe, s, ref.scorer, progress)
        f0, a0 = ref.scores["fid"], ref.scores["accuracy"]
        names = ref.scores.get("metrics", {})
        out["fid"] = {"fp32": f0, "int8": q["fid"], "rise": (q["fid"] - f0) / f0 if f0 > 0 else None, "n": s.n,
                      **({"metric": names["fid"]} if "fid" in names else {})}
        if a0 is not None:
            out["accuracy"] = {"fp32": a0, "int8": q["accuracy"], "drop_points": 100.0 * (a0 - q["accuracy"]),
                               **({"metric": names["accuracy"]} if "accuracy" in names else {})}
            if "prompts" in ref.scores:
                out["accuracy"]["prompts"] = ref.scores["prompts"]
        if budget.max_fid_rise is not None and out["fid"]["rise"] is not None:
            checks.append(out["fid"]["rise"] <= budget.max_fid_rise)
        if budget.max_accuracy_drop_points is not None and "accuracy" in out:
            checks.append(out["accuracy"]["drop_points"] <= budget.max_accuracy_drop_points)
    elif ref.quality_reason:
        out["quality_skipped"] = ref.quality_reason
    out["passed"] = all(checks)
    return out


def speed(pipe: Pipeline, ref: Reference) -> dict:
    s = ref.settings
    ms = network_ms(pipe, s.speed_batch, s.speed_calls)
    return {"batch": s.speed_batch, "threads": s.threads, "fp32_ms_per_call": ref.speed_ms,
            "int8_ms_per_call": ms, "speedup": ref.speed_ms / ms if ms > 0 else None}


def check_settings(s: GateSettings) -> None:
    if s.n < 2:
        raise EdgegenError(f"the gate needs at least 2 samples for a FID, got n = {s.n}")
    if s.drift_n < 1 or s.speed_batch < 1:
        raise EdgegenError("the gate's drift sample count and speed batch must be positive")


def describe(r: dict) -> str:
    """One line of a format's gate report: drift, FID rise, accuracy drop (for failure messages)."""
    parts = [f"drift {r['drift']['mean_abs']:.3g}"]
    if "fid" in r and r["fid"]["rise"] is not None:
        parts.append(f"FID {100 * r['fid']['rise']:+.1f}%")
    if "accuracy" in r:
        parts.append(f"accuracy -{r['accuracy']['drop_points']:.1f} points")
    return ", ".join(parts)
