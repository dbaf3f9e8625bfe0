"""Wall-clock time to train each small preset on this machine (issue 6: "about 10 minutes on 2 cores").

    .venv/bin/python benchmarks/train_time.py [--families ddpm,sde,flow,gan] [--threads 2] [--steps N]

Each preset trains in its own fresh process (``edgegen train FAMILY --preset small``) with
``--train.threads`` intra-op threads, one after the other, so runs never compete for the cores.
With ``--steps N`` only the first N steps run and the full time is extrapolated: the loop's
seconds per step times the preset's steps, plus the measured start-up (process start, data,
saving). A step costs the same all through training (fixed batch, no evaluation inside the
loop), so this is a fair estimate; the table marks such rows "extrapolated".
The load average before and after each run is recorded: a 2-core machine with a 1-minute
load well above the run's own threads was shared, and the time is then an upper bound.
Results go to benchmarks/train_time.json and train_time.md, rewritten with only the families of
this run (the runs go to runs/train-time/).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def train_once(family: str, threads: int, out: Path, steps: int = 0) -> dict:
    from edgegen.train.families import get_preset
    preset_steps = get_preset(family, "small").train.steps
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-m", "edgegen.cli", "train", family, "--preset", "small", "--quiet",
           "--train.threads", str(threads), "--out", str(out)]
    subprocess.run(cmd + (["--train.steps", str(steps)] if steps else []), check=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    stats = json.loads((out / "config.json").read_text()).get("stats", {})
    per_step = stats["seconds"] / stats["steps"]
    full = per_step * preset_steps + (wall - stats["seconds"])
    return {"family": family, "threads": threads, "wall_seconds": wall, "train_seconds": stats["seconds"],
            "steps_run": stats["steps"], "preset_steps": preset_steps, "seconds_per_step": per_step,
            "full_preset_seconds": full, "extrapolated": bool(steps) and steps < preset_steps,
            "parameters": stats.get("parameters"),
            "load_before_1_5_15": list(load_before), "load_after_1_5_15": list(os.getloadavg())}


def render(rows: list[dict], machine: dict) -> str:
    lines = ["# Training time of the small presets", "",
             f"Machine: {machine['cpu']}, {machine['cores']} logical cores, {machine['os']}; "
             f"torch {machine['torch']}. Produced by `.venv/bin/python benchmarks/train_time.py`; one preset",
             "at a time, each in a fresh process; the start-up column is process start, data and saving;",
             "`s/step` is the loop's own clock. Goal (issue 6): about 10 minutes on 2 cores.", "",
             "| family | threads | preset steps | steps run | parameters | s/step | start-up + save | small preset | load before (1 min) | load after (1 min) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        full = f"{r['full_preset_seconds'] / 60:.1f} min" + (" (extrapolated)" if r["extrapolated"] else "")
        lines.append(f"| {r['family']} | {r['threads']} | {r['preset_steps']} | {r['steps_run']} | "
                     f"{(r['parameters'] or 0) / 1e6:.2f} M | {r['seconds_per_step']:.3f} | "
                     f"{r['wall_seconds'] - r['train_seconds']:.0f} s | {full} | {r['load_before_1_5_15'][0]:.2f} | "
                     f"{r['load_after_1_5_15'][0]:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", default="ddpm,sde,flow,gan")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=0, help="run only this many steps and extrapolate (0 = all)")
    args = p.parse_args()
    import torch
    sys.path.insert(0, str(ROOT))
    from edgegen.paths import atomic_write_text
    from edgegen.profiling.peak import cpu_model
    machine = {"cpu": cpu_model(), "cores": os.cpu_count(), "os": platform.platform(), "torch": torch.__version__}
    rows = []
    for family in [f.strip() for f in args.families.split(",") if f.strip()]:
        print(f"[train_time] {family} small, {args.threads} threads", flush=True)
        rows.append(train_once(family, args.threads, ROOT / "runs" / "train-time" / f"{family}-small", args.steps))
        print(f"[train_time] {family}: {rows[-1]['full_preset_seconds'] / 60:.1f} min for the preset", flush=True)
        result = {"machine": machine, "rows": rows}
        atomic_write_text(HERE / "train_time.json", json.dumps(result, indent=1))
        atomic_write_text(HERE / "train_time.md", render(rows, machine))


if __name__ == "__main__":
    main()
