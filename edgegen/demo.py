"""``edgegen demo``: the main job, end to end, with caching.

evaluator (runs/evaluator) -> small model (runs/MODEL-small) -> bundle (bundles/MODEL-small)
-> sample on every available backend -> score -> demo/samples.png, report.json, report.md.
A second run reuses the cached evaluator, run and bundle. ``bundle=`` scores a given bundle as it
is (nothing is trained, exported or written there).

The evaluator is the one of the model's data set and sample shape (train.evaluate.manifest_evaluator,
the same as ``edgegen eval``): digits for the default DDPM, Fashion-MNIST for the small latent
diffusion model. Prompt models are prompted with the held-out caption templates, so their
accuracy is prompt accuracy; they also get ``prompts.png``, one row of samples per class.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import numpy as np

from edgegen.errors import EdgegenError
from edgegen.paths import atomic_write_text, cache_dir

DEMO_PRESET = "small"
GRID_COLUMNS = 10  # samples per class row of prompts.png


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


def _given_bundle(bundle: Path, model: str) -> dict:
    """The parity results of a bundle the caller gave (read only); one-line errors when unusable."""
    from edgegen.manifest import VERIFY, read_manifest
    m = read_manifest(bundle)
    if m.family != model:
        raise EdgegenError(f"--bundle {bundle} is a {m.family} bundle, not {model} (give --model {m.family})")
    try:
        verify = json.loads((Path(bundle) / VERIFY).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise EdgegenError(f"bundle {bundle} has no readable {VERIFY} ({e.__class__.__name__}): export it with "
                           "edgegen export") from None
    if not verify.get("passed"):
        raise EdgegenError(f"bundle {bundle} did not pass its parity gate ({VERIFY}): the demo scores passed bundles")
    print(f"[demo] scoring the given bundle {bundle} (nothing is trained, exported or written there)")
    return verify


def class_names(manifest) -> list[str]:
    """The name of each class as its prompts say it (prompt models), else its label number."""
    k = max(1, manifest.num_classes)
    from edgegen.train.evaluate import takes_prompt
    if takes_prompt(manifest):
        from edgegen.train.ldm_captions import DIGITS, caption_set
        caps = caption_set(manifest.data["data"].get("source")) if manifest.family == "ldm" else DIGITS
        return [str(v) for v in caps.names[:k]]
    return [str(i) for i in range(k)]


def prompt_grid(path: Path, images: np.ndarray, labels: np.ndarray, names: list[str],
                columns: int = GRID_COLUMNS, scale: int = 3) -> list[list[int]]:
    """A PNG with one row per class (its name at the left) and up to ``columns`` of its samples, in
    sample order. Returns the sample indices of each row (the report lists their prompts)."""
    from PIL import Image, ImageDraw, ImageFont

    from edgegen.images import grid
    from edgegen.paths import atomic_write_bytes
    rows = [np.flatnonzero(labels == c)[:columns].tolist() for c in range(len(names))]
    rows = [r for r in rows if r]
    if not rows:
        raise EdgegenError("no samples to put in the prompt grid")
    width = max(len(r) for r in rows)
    c, h, w = images.shape[1:]
    blank = np.full((c, h, w), -1.0, dtype=np.float32)  # a class with fewer samples: dark tiles
    tiles = np.stack([images[r[k]] if k < len(r) else blank for r in rows for k in range(width)])
    body = grid(tiles, nrow=width, scale=scale).convert("RGB")
    font = ImageFont.load_default()
    used = [names[int(labels[r[0]])] for r in rows]
    margin = 8 + max(int(ImageDraw.Draw(body).textlength(t, font=font)) for t in used)
    canvas = Image.new("RGB", (body.width + margin, body.height), (40, 40, 40))
    canvas.paste(body, (margin, 0))
    draw = ImageDraw.Draw(canvas)
    row_h = (h + 1) * scale
    for i, text in enumerate(used):
        draw.text((4, scale + i * row_h + row_h // 2 - 6), text, fill=(230, 230, 230), font=font)
    import io
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    atomic_write_bytes(Path(path), buf.getvalue())
    return rows


def _markdown(report: dict) -> str:
    refs, names = report["references"], report["metrics"]
    acc, fid = names["accuracy"], names["fid"]
    what = "prompted (held-out caption templates)" if report.get("prompts") else "label-conditioned"
    same = report.get("same_seed_reference")
    lines = [f"# edgegen demo: {report['model']} ({report['preset'] or 'given bundle'})", "",
             f"Bundle `{report['bundle']}`, {report['samples_per_backend']} {what} samples per "
             f"backend, {report['plan']}, guidance {report['guidance']}, seed {report['seed']}.", "",
             f"| backend | {acc} | {fid} | recall (of real) | coverage (of real) | memorized | seconds "
             f"| ms / sample | network share | max abs diff vs {same} (same seed) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in report["backends"].items():
        lat, div, mem = s["latency"], s.get("diversity") or {}, s.get("memorization") or {}
        share = lambda k: (f"{div[k]:.3f} ({div[k + '_vs_reference']:.0%})"  # noqa: E731
                           if k in div and div.get(k + "_vs_reference") is not None else "")
        diff = s.get("same_seed_max_abs")
        lines.append(f"| {name} | {s['accuracy']:.3f} | {s['fid']:.2f} | {share('recall')} | {share('coverage')} | "
                     f"{mem.get('fraction_memorized', float('nan')):.1%} | {lat['seconds']:.1f} | "
                     f"{lat['per_sample_ms']:.1f} | {lat['network_seconds'] / lat['seconds']:.0%} | "
                     f"{'' if diff is None else f'{diff:.2e}'} |")
    for name, why in report["unavailable"].items():
        lines.append(f"| {name} | skipped: {why} | | | | | | | | |")
    lines += ["", f"Reference {fid}s against the test split (lower is better):", "",
              f"- real train images: {refs['fid_train_vs_test']:.2f} (the whole train split); "
              f"{refs['fid_train_same_n_vs_test']:.2f} ({refs['same_n']} images, as many as were generated)",
              f"- uniform noise: {refs['fid_noise_vs_test']:.2f}",
              f"- evaluator test accuracy: {refs['test_accuracy']:.3f}"]
    rec = report.get("reconstruction")
    if rec and "mse" in rec:
        lines += ["", f"Autoencoder reconstructions of {rec['n']} test images ({report['grid_backend']}): "
                  f"MSE {rec['mse']:.4f}, classifier accuracy {rec['accuracy']:.3f} "
                  f"(real images {rec['real_accuracy']:.3f})" + (f", {fid} {rec['fid']:.1f}" if "fid" in rec else "")]
    if report.get("grid"):
        g = report["grid"]
        lines += ["", f"`{g['file']}` ({report['grid_backend']}): one row per class, {g['columns']} samples each, "
                  "prompted with:", ""]
        lines += [f"- {row['class']}: " + "; ".join(f'"{p}"' for p in row["prompts"]) for row in g["rows"]]
    lines += ["", "Parity against PyTorch (max abs error; fp32 gate: single call <= 1e-4, trajectory <= 1e-3 "
              "(token models: 1e-4 over a prefill and 20 decode steps)):", "",
              "| role | format | precision | check | passed |", "|---|---|---|---|---|"]
    from edgegen.export.targets import describe_check
    for role, per in report["parity"]["results"].items():
        for fmt, by_precision in per.items():  # targets that cannot run here give structural checks
            for precision, r in by_precision.items():
                lines.append(f"| {role} | {fmt} | {precision} | {describe_check(r)} | {r['passed']} |")
    return "\n".join(lines) + "\n"


def _sample_everywhere(manifest, n: int, seed: int, progress: bool, ev) -> tuple[dict, dict, dict]:
    """(scores, samples, unavailable) per backend: every registered backend that has this bundle's format."""
    from edgegen.runtimes.api import Pipeline
    from edgegen.runtimes.backends import available_backends, backend_class
    from edgegen.train.evaluate import evaluate_pipeline
    scores, samples, unavailable = {}, {}, {}
    for name, reason in available_backends().items():
        fmt = None if reason else backend_class(name).format
        if not reason and fmt not in manifest.formats(manifest.generator["role"]):
            reason = f"the demo bundle has no {fmt} export (edgegen export RUN --format {fmt})"
        if not reason:
            try:
                pipe = Pipeline(manifest, name)
                print(f"[demo] sampling {n} on {name}")
                scores[name], samples[name] = evaluate_pipeline(pipe, n=n, seed=seed, progress=progress, evaluator=ev)
            except EdgegenError as e:  # a backend that cannot run this bundle's stages (native: a text context)
                reason = str(e)
        if reason:
            unavailable[name] = reason
    if not scores:
        raise EdgegenError("no backend could sample the demo bundle: " +
                           "; ".join(f"{k}: {v}" for k, v in unavailable.items()))
    return scores, samples, unavailable


def run_demo(model: str = "ddpm", out: Path = Path("demo"), n: int = 500, seed: int = 0,
             progress: bool = True, preset: str = DEMO_PRESET, bundle: Optional[Path] = None) -> dict:
    from edgegen.images import save_grid
    from edgegen.manifest import read_manifest
    from edgegen.train.evaluate import manifest_evaluator, metric_names
    if n < 10:
        raise EdgegenError(f"--n must be at least 10, got {n}")
    t_start = time.time()
    if bundle is None:
        run = _cached_run(model, preset, progress)
        bundle, verify = _cached_bundle(run, progress)
    else:
        run, preset, verify = None, None, _given_bundle(Path(bundle), model)
    manifest = read_manifest(bundle)
    names = metric_names(manifest)
    print(f"[demo] {names['fid']} evaluator (cached under {cache_dir() / 'evaluator'} after the first run)")
    ev = manifest_evaluator(manifest, progress)
    scores, samples, unavailable = _sample_everywhere(manifest, n, seed, progress, ev)

    same = "torch" if "torch" in samples else next(iter(samples))  # same seed: every backend vs this one
    for name, s in scores.items():
        s["same_seed_max_abs"] = float(np.abs(samples[name].astype(np.float64) - samples[same]).max())
    shown = "onnxruntime" if "onnxruntime" in samples else next(iter(samples))
    out.mkdir(parents=True, exist_ok=True)
    save_grid(out / "samples.png", samples[shown][:100], nrow=10)
    first = scores[shown]
    report = {"model": model, "preset": preset, "run": str(run) if run else None, "bundle": str(bundle),
              "samples_per_backend": n, "seed": seed, "plan": first["plan"], "guidance": first["guidance"],
              "metrics": names, "prompts": first.get("prompts"), "same_seed_reference": same,
              "references": first["references"], "parity": verify, "grid_backend": shown,
              "backends": {k: {key: v for key, v in s.items() if key not in ("references", "reconstruction")}
                           for k, s in scores.items()},
              "unavailable": unavailable}
    if "reconstruction" in first:
        report["reconstruction"] = first["reconstruction"]
    if first.get("prompts") == "held-out templates":  # prompts x samples: one row per class
        from edgegen.train.evaluate import sample_request
        labels, request = sample_request(manifest, n)
        classes = class_names(manifest)
        rows = prompt_grid(out / "prompts.png", samples[shown], labels, classes)
        report["grid"] = {"file": "prompts.png", "columns": max(len(r) for r in rows), "rows": [
            {"class": classes[int(labels[r[0]])], "samples": r,
             "prompts": list(dict.fromkeys(request["prompt"][i] for i in r))} for r in rows]}
    report["seconds_total"] = time.time() - t_start
    atomic_write_text(out / "report.json", json.dumps(report, indent=2))
    atomic_write_text(out / "report.md", _markdown(report))
    print()
    print(f"{'backend':12s} {names['accuracy']:>16s} {names['fid']:>12s} {'ms/sample':>10s} {'vs ' + same:>12s}")
    for name, s in scores.items():
        print(f"{name:12s} {s['accuracy']:16.3f} {s['fid']:12.2f} {s['latency']['per_sample_ms']:10.1f} "
              f"{s['same_seed_max_abs']:12.2e}")
    refs = first["references"]
    print(f"references: {names['fid']} real train {refs['fid_train_vs_test']:.2f} (all), "
          f"{refs['fid_train_same_n_vs_test']:.2f} ({refs['same_n']} images), noise {refs['fid_noise_vs_test']:.2f}")
    made = ["samples.png"] + (["prompts.png"] if "grid" in report else []) + ["report.json", "report.md"]
    print("wrote " + ", ".join(f"{out}/{f}" for f in made))
    return report
