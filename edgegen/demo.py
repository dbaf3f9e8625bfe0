"""``edgegen demo``: the main job, end to end, with caching.

evaluator (runs/evaluator) -> small model (runs/MODEL-small) -> bundle (bundles/MODEL-small)
-> sample on every available backend -> score -> demo/samples.png, report.json, report.md.
A second run reuses the cached evaluator, run and bundle.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from edgegen.errors import EdgegenError
from edgegen.paths import atomic_write_text, cache_dir

DEMO_PRESET = "small"


def _cached_run(model: str, preset: str, progress: bool) -> Path:
    from edgegen.train.families import get_preset
    from edgegen.train.runs import load_run, train_run
    run = cache_dir() / f"{model}-{preset}"
    try:
        load_run(run)
        print(f"[demo] reusing trained model {run}")
        return run
    except EdgegenError:
        pass
    print(f"[demo] training {model} ({preset} preset) -> {run}")
    return train_run(model, get_preset(model, preset), run, progress=progress)


def _cached_bundle(run: Path, progress: bool) -> tuple[Path, dict]:
    from edgegen.export.bundle import DEFAULT_FORMATS as FORMATS
    from edgegen.train.runs import export_run as export_bundle
    from edgegen.manifest import VERIFY, read_manifest
    bundle = Path("bundles") / run.name
    try:
        m = read_manifest(bundle)
        verify = json.loads((bundle / VERIFY).read_text())
        newer = (run / "model.safetensors").stat().st_mtime > (bundle / "manifest.json").stat().st_mtime
        if verify.get("passed") and not newer and set(FORMATS) <= set(m.formats(m.generator["role"])):
            print(f"[demo] reusing bundle {bundle}")
            return bundle, verify
    except (EdgegenError, OSError, json.JSONDecodeError):
        pass
    print(f"[demo] exporting {run} -> {bundle} ({', '.join(FORMATS)}) with the parity gate")
    return bundle, export_bundle(run, list(FORMATS), bundle, progress=progress)


def _markdown(report: dict) -> str:
    refs = report["references"]
    lines = [f"# edgegen demo: {report['model']} ({report['preset']})", "",
             f"Bundle `{report['bundle']}`, {report['samples_per_backend']} label-conditioned samples per "
             f"backend, {report['plan']}, guidance {report['guidance']}, seed {report['seed']}.", "",
             "| backend | class accuracy | digit-FID | recall (of real) | coverage (of real) | memorized | seconds "
             "| ms / sample | network share |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, s in report["backends"].items():
        lat, div, mem = s["latency"], s.get("diversity", {}), s.get("memorization", {})
        share = lambda k: (f"{div[k]:.3f} ({div[k + '_vs_reference']:.0%})"  # noqa: E731
                           if k in div and div.get(k + "_vs_reference") is not None else "")
        lines.append(f"| {name} | {s['accuracy']:.3f} | {s['fid']:.2f} | {share('recall')} | {share('coverage')} | "
                     f"{mem.get('fraction_memorized', float('nan')):.1%} | {lat['seconds']:.1f} | "
                     f"{lat['per_sample_ms']:.1f} | {lat['network_seconds'] / lat['seconds']:.0%} |")
    for name, why in report["unavailable"].items():
        lines.append(f"| {name} | skipped: {why} | | | | | | | |")
    lines += ["", "Reference digit-FIDs against the test split (lower is better):", "",
              f"- real train images: {refs['fid_train_vs_test']:.2f} (the whole train split); "
              f"{refs['fid_train_same_n_vs_test']:.2f} ({refs['same_n']} images, as many as were generated)",
              f"- uniform noise: {refs['fid_noise_vs_test']:.2f}",
              f"- evaluator test accuracy: {refs['test_accuracy']:.3f}", "",
              "Parity against PyTorch (max abs error; fp32 gate: single call <= 1e-4, trajectory <= 1e-3 "
              "(token models: 1e-4 over a prefill and 20 decode steps)):", "",
              "| role | format | precision | check | passed |", "|---|---|---|---|---|"]
    from edgegen.export.targets import describe_check
    for role, per in report["parity"]["results"].items():
        for fmt, by_precision in per.items():  # targets that cannot run here give structural checks
            for precision, r in by_precision.items():
                lines.append(f"| {role} | {fmt} | {precision} | {describe_check(r)} | {r['passed']} |")
    return "\n".join(lines) + "\n"


def run_demo(model: str = "ddpm", out: Path = Path("demo"), n: int = 500, seed: int = 0,
             progress: bool = True, preset: str = DEMO_PRESET) -> dict:
    from edgegen.train.evaluate import evaluate_pipeline
    from edgegen.images import save_grid
    from edgegen.runtimes.api import Pipeline
    from edgegen.runtimes.backends import available_backends, backend_class
    from edgegen.manifest import read_manifest
    from edgegen.train.evaluator import get_evaluator
    if n < 10:
        raise EdgegenError(f"--n must be at least 10, got {n}")
    t_start = time.time()
    print("[demo] digit evaluator (cached under runs/evaluator after the first run)")
    ev = get_evaluator(progress=progress)
    run = _cached_run(model, preset, progress)
    bundle, verify = _cached_bundle(run, progress)
    manifest = read_manifest(bundle)

    scores, unavailable, grid_images = {}, {}, None
    for name, reason in available_backends().items():
        fmt = None if reason else backend_class(name).format
        if not reason and fmt not in manifest.formats(manifest.generator["role"]):
            reason = f"the demo bundle has no {fmt} export (edgegen export RUN --format {fmt})"
        pipe = None
        if not reason:
            try:
                pipe = Pipeline(manifest, name)
            except EdgegenError as e:  # e.g. a backend that cannot run this bundle's stages
                reason = str(e)
        if reason:
            unavailable[name] = reason
            continue
        print(f"[demo] sampling {n} on {name}")
        s, images = evaluate_pipeline(pipe, n=n, seed=seed, progress=progress, evaluator=ev)
        scores[name] = s
        if grid_images is None or name == "onnxruntime":
            grid_images = images[:100]
    out.mkdir(parents=True, exist_ok=True)
    save_grid(out / "samples.png", grid_images, nrow=10)
    first = next(iter(scores.values()))
    report = {"model": model, "preset": preset, "run": str(run), "bundle": str(bundle),
              "samples_per_backend": n, "seed": seed, "plan": first["plan"], "guidance": first["guidance"],
              "references": first["references"], "parity": verify,
              "backends": {k: {key: v for key, v in s.items() if key != "references"} for k, s in scores.items()},
              "unavailable": unavailable, "seconds_total": time.time() - t_start}
    atomic_write_text(out / "report.json", json.dumps(report, indent=2))
    atomic_write_text(out / "report.md", _markdown(report))
    print()
    print(f"{'backend':12s} {'accuracy':>9s} {'FID':>7s} {'ms/sample':>10s}")
    for name, s in scores.items():
        print(f"{name:12s} {s['accuracy']:9.3f} {s['fid']:7.2f} {s['latency']['per_sample_ms']:10.1f}")
    refs = first["references"]
    print(f"references: FID real train {refs['fid_train_vs_test']:.2f} (all), "
          f"{refs['fid_train_same_n_vs_test']:.2f} ({refs['same_n']} images), noise {refs['fid_noise_vs_test']:.2f}")
    print(f"wrote {out}/samples.png, {out}/report.json, {out}/report.md")
    return report
