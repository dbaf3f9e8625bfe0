"""``edgegen`` command line: train, export, sample, eval, info, serve-web, demo, profile, calibrate.

Bad input ends with one line ``edgegen: error: ...`` on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

from edgegen.errors import EdgegenError


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (usage is in --help)."""

    def error(self, message: str):
        self.exit(2, f"edgegen: error: {message}\n")


def _families():
    from edgegen.train.families import trainable
    return trainable()


def _trainable_family(name: str) -> str:
    """argparse type of --model: imported-only families get their one-line pointer to edgegen import."""
    from edgegen.train.families import check_trainable
    try:
        check_trainable(name)
    except EdgegenError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return name


def cmd_train(args) -> int:
    from edgegen.config import apply_flags
    from edgegen.train.families import get_preset
    from edgegen.train.runs import train_run
    cfg = get_preset(args.model, args.preset)
    if args.data:
        from edgegen.train.data import DEFAULT_IMAGE_SIZE
        cfg.data.source = args.data
        # a data set's natural size (fashion: 32) unless --data.image_size says otherwise (applied below)
        cfg.data.image_size = DEFAULT_IMAGE_SIZE.get(args.data, cfg.data.image_size)
    cfg = apply_flags(cfg, args)
    out = Path(args.out or f"runs/{args.model}-{args.preset}")
    from edgegen.train.loop import is_main_process
    train_run(args.model, cfg, out, progress=not args.quiet)
    if is_main_process():
        print(f"wrote {out}/model.safetensors and {out}/config.json")
    return 0


def cmd_export(args) -> int:
    from edgegen.export.bundle import export_bundle, parse_formats, parse_plan_specs
    from edgegen.export.recipe import ExportRecipe, parse_batches
    from edgegen.train.runs import export_source
    formats = parse_formats(args.format)
    run = Path(args.run)
    out = Path(args.out or f"bundles/{run.name}")
    from edgegen.export.recipe import parse_delegates
    opts = {"static_batches": parse_batches(args.static_batches)} if args.static_batches else {}
    if args.executorch_delegates is not None:
        opts["executorch_delegates"] = parse_delegates(args.executorch_delegates)
    recipe = ExportRecipe(**opts)
    plans = parse_plan_specs(args.plans) if args.plans else None
    verify = export_bundle(export_source(run), formats, out, progress=not args.quiet, recipe=recipe, plans=plans)
    return _print_verify(verify, out)


def _print_verify(verify: dict, out: Path) -> int:
    """One line per role, format and precision of the parity gate, then the bundle written."""
    from edgegen.export.targets import describe_check
    for role, per in verify["results"].items():
        for fmt, by_precision in per.items():
            for precision, r in by_precision.items():
                print(f"{role:10s} {fmt:9s} {precision:5s} {describe_check(r)}  {'PASS' if r['passed'] else 'FAIL'}")
    print(f"wrote bundle {out}")
    return 0


def cmd_import(args) -> int:
    from edgegen.export.bundle import parse_formats
    if args.module:  # a user's own nn.Module (train/module_import.py)
        return _import_module(args, parse_formats(args.format))
    own = [f for f in ("weights", "scheduler", "shape", "num_classes", "kwargs", "prediction_type")
           if getattr(args, f) is not None] + (["null_label"] if args.null_label else [])
    if args.path is None or own:
        raise EdgegenError("give a diffusers pipeline folder (PATH) or --module FILE.py:CLASS" + (
            f" (--{own[0].replace('_', '-')} needs --module)" if own and args.path else ""))
    from edgegen.train.diffusers_import import import_pipeline
    src = Path(args.path)
    out = Path(args.out or f"bundles/{src.resolve().name}")
    verify = import_pipeline(src, out, parse_formats(args.format), progress=not args.quiet, sampler=args.sampler)
    return _print_verify(verify, out)


def _import_module(args, formats) -> int:
    from edgegen.train.module_import import import_module, parse_module_ref
    if args.path is not None:
        raise EdgegenError("give either a diffusers pipeline folder (PATH) or --module, not both")
    spec = parse_module_ref(args.module)
    if args.kwargs:
        try:
            spec.kwargs = json.loads(args.kwargs)
        except ValueError as e:
            raise EdgegenError(f"--kwargs is not JSON: {e}") from None
    if args.shape is None or args.scheduler is None:
        raise EdgegenError("--module needs --shape C,H,W and --scheduler (a diffusers scheduler class, "
                           "scheduler_config.json or JSON)")
    out = Path(args.out or f"bundles/{Path(spec.file).stem}")
    verify = import_module(spec, out, args.scheduler, args.shape, args.weights, args.num_classes or 0, args.null_label,
                           args.sampler, args.steps, args.prediction_type, formats, args.trust_code,
                           progress=not args.quiet)
    return _print_verify(verify, out)


def _backend_opts(args) -> dict:
    opts = {}
    if getattr(args, "providers", None):
        opts["providers"] = [p for p in args.providers.split(",") if p]
    if getattr(args, "device", None):
        opts["device"] = args.device
    if getattr(args, "trust_code", False):
        opts["trust_code"] = True
    if getattr(args, "mode", None) and args.mode != "latency":  # onnxruntime, openvino (backends/throughput.py)
        opts.update(mode=args.mode, streams=args.streams)
    for key in STAGE_DEVICES:  # native: each stage on its own OpenVINO device
        if getattr(args, key, None):
            if getattr(args, "backend", None) != "native":
                raise EdgegenError(f"--{key.replace('_', '-')} needs --backend native (per-stage devices)")
            opts[key] = getattr(args, key)
    return opts


STAGE_DEVICES = ("text_encoder_device", "denoiser_device", "decoder_device")


def _open(path, verify: bool = True):
    """A bundle, or a training run folder when the training extra is installed."""
    try:
        from edgegen.train.runs import open_source
    except ImportError:  # runtime-only install: bundles only
        from edgegen.runtimes.api import open_manifest as open_source
    return open_source(path, verify=verify)


def progress_callback(quiet: bool):
    """The CLI's progress bar, built on the pipeline's step callback (None when quiet)."""
    if quiet:
        return None
    from tqdm import tqdm

    from edgegen.runtimes.pipeline import bar_callback
    return bar_callback(tqdm(unit="step", dynamic_ncols=True, leave=False), close_at_end=True)


def cmd_sample(args) -> int:
    from edgegen.images import save_grid, save_npy
    from edgegen.runtimes.api import Pipeline, default_backend
    manifest = _open(args.bundle)
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise EdgegenError(f"--out must end in .png, got {out}")
    pipe = Pipeline(manifest, args.backend or default_backend(manifest), args.precision, **_backend_opts(args))
    options = {"sampler": args.sampler, "steps": args.steps, "eta": args.eta, "guidance": args.guidance,
               "snr": args.snr, "corrector": args.corrector, "temperature": args.temperature,
               "top_k": args.top_k, "top_p": args.top_p}
    edit = {}
    if args.init_image or args.mask or args.strength is not None:  # image-to-image, inpainting
        from edgegen.images import read_image, read_mask
        if not args.init_image:
            raise EdgegenError("--mask and --strength need --init-image")
        shape, rng = manifest.sample_shape, manifest.data["data"].get("range", (-1.0, 1.0))
        edit = {"init_image": read_image(Path(args.init_image), shape, rng), "strength": args.strength,
                "mask": read_mask(Path(args.mask), shape[1:]) if args.mask else None}
    images = pipe.sample(args.n, seed=args.seed, labels=args.label, prompt=args.prompt, batch_size=args.batch_size,
                         callback=progress_callback(args.quiet), **options, **edit)
    save_grid(out, images, nrow=min(args.n, 10) if manifest.num_classes else None)
    save_npy(out.with_suffix(".npy"), images)
    print(f"wrote {out} and {out.with_suffix('.npy')} ({args.n} samples, {images.shape[1:]})")
    return 0


def cmd_eval(args) -> int:
    from edgegen.train.evaluate import evaluate
    from edgegen.paths import atomic_write_text
    if args.n < 2:
        raise EdgegenError(f"--n must be at least 2 to compute a FID, got {args.n}")
    scores, _ = evaluate(_open(args.path), args.backend, n=args.n, seed=args.seed, sampler=args.sampler,
                         steps=args.steps, guidance=args.guidance, batch_size=args.batch_size,
                         progress=not args.quiet)
    text = json.dumps(scores, indent=2)
    if args.json:
        atomic_write_text(Path(args.json), text)
    print(text)
    return 0


def cmd_info(args) -> int:
    m = _open(args.bundle)
    print(f"{m.root}: family {m.family}, sample shape {list(m.sample_shape)}, {m.num_classes} classes"
          + (f" (migrated from schema version {m.data['migrated_from']})" if m.data.get("migrated_from") else ""))
    for role, r in m.data["roles"].items():
        files = ", ".join(f"{fmt}/{'+'.join(per)}" for fmt, per in r["files"].items())
        print(f"  role {role}: {files}")
    for name, stage in m.pipeline.items():  # the stages, as the manifest declares them
        fields = {k: v for k, v in stage.items() if k not in ("label_prompts", "defaults", "bundle_plans", "samplers")}
        print(f"  stage {name}: {json.dumps(fields)}")
    if m.data.get("plans"):
        print(f"  plans: {', '.join(m.data['plans'])}")
    if "samplers" in m.generator:
        print(f"  samplers: {', '.join(m.generator['samplers'])}")
    print(f"  defaults: {json.dumps(m.generator.get('defaults', {}))}")
    return 0


def cmd_tokenize(args) -> int:
    """A prompt's token ids, comma-separated: the native runtime takes ids (edgegen-run --prompt-tokens)."""
    from edgegen.runtimes.stages import make_condition
    cond = make_condition(_open(args.bundle))
    if not cond.takes_prompt:
        raise EdgegenError("this model takes no prompt (it is conditioned on labels)")
    print(",".join(str(int(i)) for i in cond.text.encode(args.prompt)))
    return 0


def cmd_serve_web(args) -> int:
    from edgegen.web_serve import WebServer
    srv = WebServer(args.bundle, port=args.port, web_dir=args.web_dir, quiet=args.quiet)
    print(f"serving the web page for {srv.manifest.root} at {srv.url} (127.0.0.1 only; Ctrl-C stops)", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        print("edgegen: serve-web stopped", file=sys.stderr)
    finally:
        srv.close()
    return 0


def cmd_demo(args) -> int:
    from edgegen.demo import run_demo
    run_demo(model=args.model, out=Path(args.out), n=args.n, progress=not args.quiet, preset=args.preset,
             bundle=Path(args.bundle) if args.bundle else None)
    return 0


def _int_list(text: str, what: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise EdgegenError(f"{what} must be a comma list of integers, got '{text}'") from None


def _words(text):
    return [w.strip() for w in text.split(",") if w.strip()] if text else None


def cmd_target_quality(args) -> int:
    from edgegen.profiling.target_quality import FULL_PLANS, TargetRequest, find, write
    from edgegen.train.evaluate import gate_scorer
    from edgegen.runtimes.api import open_manifest
    if args.sampler or args.steps:
        raise EdgegenError("--target-quality takes its candidates as --plans SAMPLER-STEPS,... (not --sampler/--steps)")
    scorer, reason = gate_scorer(open_manifest(args.bundle))
    if scorer is None:
        raise EdgegenError(f"--target-quality scores quality, and this bundle cannot be scored: {reason}")
    req = TargetRequest(bundle=args.bundle, precisions=_words(args.precisions), modes=_words(args.mode) or ["latency"],
                        streams=args.streams, batches=_int_list(args.batch or "16", "--batch"), seed=args.seed,
                        repeat=args.repeat or 3, threads=args.threads, n=args.tq_n or (500 if args.full else 200),
                        score_all=args.score_all or args.full, fid_rise=args.fid_rise, acc_drop_points=args.accuracy_drop)
    if args.backends:
        req.backends = _words(args.backends)
    if args.plans or args.full:
        req.plans = _words(args.plans) or list(FULL_PLANS)
    report = find(req, scorer, progress=not args.quiet)
    out = write(report, Path(args.out or "target-quality"))
    for batch, name in report["chosen"].items():
        row = next(r for r in report["candidates"] if r["name"] == name and r["batch"] == int(batch))
        print(f"batch {batch}: {name}, {row['ms_per_sample']:.2f} ms/sample ({row['speedup_vs_reference']:.2f}x "
              f"the reference {report['reference']['name']}), FID {row['fid']:.3f}")
    print(f"wrote {out}/target-quality.json, target-quality.md")
    return 0


def cmd_profile(args) -> int:
    if args.target_quality:
        return cmd_target_quality(args)
    from edgegen.profiling.report import write
    from edgegen.profiling.runner import ProfileRequest, profile_bundle
    names = [b.strip() for b in args.backends.split(",") if b.strip()] if args.backends else None
    req = ProfileRequest(bundle=args.bundle, precisions=_words(args.precisions) or ["fp32"],
                         batches=_int_list(args.batch or "1,16", "--batch"), steps=args.steps, sampler=args.sampler,
                         repeat=args.repeat or 20, seed=args.seed, baselines=not args.no_baselines,
                         threads=args.threads, rounds=args.rounds, modes=_words(args.mode) or ["latency"],
                         streams=args.streams)
    if names is not None:
        req.backends = names
    report = profile_bundle(req, progress=not args.quiet)
    out = write(report, Path(args.out or "profile"), plots=not args.no_plots)
    for r in report["results"]:
        if r["status"] == "ok":
            s = r["latency_per_sample_ms"]
            print(f"{r['name']:>24} batch {r['batch']:>3}: {s['p50']:8.2f} ms/sample p50 ({s['p90']:.2f} p90), "
                  f"host overhead {100 * r['host_overhead_fraction']:.1f}%, load {r['load_seconds']:.2f} s")
        else:
            print(f"{r['name']:>24} batch {r['batch']:>3}: FAILED {r['reason']}")
    for r in report["skipped"]:
        print(f"{r['name']:>24}: skipped, {r['reason']}")
    print(f"wrote {out}/report.json, report.md" + ("" if args.no_plots else ", latency.png, timeline.png, roofline.png"))
    return 0


def cmd_calibrate(args) -> int:
    from edgegen.calibration.calibrate import CalibrateRequest, calibrate, parse_formats
    from edgegen.calibration.gate import Budget, GateSettings
    from edgegen.train.evaluate import gate_scorer
    scorer, no_scorer_reason = gate_scorer(_open(args.bundle, verify=False), progress=not args.quiet)
    if args.precision != "int8":
        return _calibrate_float(args, scorer, no_scorer_reason)
    req = CalibrateRequest(
        scorer=scorer, no_scorer_reason=no_scorer_reason or "",
        bundle=Path(args.bundle), formats=parse_formats(args.formats), calls=args.calls,
        budget=_budget(args, Budget()),
        gate=GateSettings(n=args.n, drift_n=args.drift_n, seed=args.seed, speed_batch=args.speed_batch,
                          threads=args.threads),
        mixed_precision=not args.no_mixed_precision, naive_baseline=not args.no_naive,
        range_method=args.ranges, allow_over_budget=args.allow_over_budget,
        coreml_batches=tuple(_int_list(args.coreml_batches, "--coreml-batches")) if args.coreml_batches else None,
        progress=not args.quiet)
    report = calibrate(req)
    for fmt, r in report["formats"].items():
        if "drift" in r:
            line = f"drift {r['drift']['mean_abs']:.4f} mean abs"
            if "fid" in r:
                line += f", FID {r['fid']['fp32']:.2f} -> {r['fid']['int8']:.2f} ({100 * r['fid']['rise']:+.1f}%)"
            if "accuracy" in r:
                line += f", accuracy {-r['accuracy']['drop_points']:+.1f} points"
            line += (f", {r['speed']['speedup']:.2f}x at batch {r['speed']['batch']}, "
                     f"{len(r['kept_float'])} layers float")
            print(f"{fmt:9s} int8  {line}  {'PASS' if r['passed'] else 'OVER BUDGET'}")
        elif fmt == "tensorrt":
            print(f"{fmt:9s} int8  {r['cache']}: {r['check']['summary']}; engine {r['engine']}")
        else:
            for v, c in r["checks"].items():
                print(f"{fmt:9s} {v:8s} {c['summary']}")
    state = "passed" if report["passed"] else "over budget"
    print(f"wrote {args.bundle}/calibration/report.json and the int8 models ({state})")
    return 0


def _budget(args, default):
    """The gate budget: the flags given, else ``default``'s (int8's, or the float precision's)."""
    from edgegen.calibration.gate import Budget
    return Budget(default.max_accuracy_drop_points if args.max_accuracy_drop is None else args.max_accuracy_drop,
                  default.max_fid_rise if args.max_fid_rise is None else args.max_fid_rise,
                  default.max_drift_mean_abs if args.max_drift is None else args.max_drift)


def _calibrate_float(args, scorer, no_scorer_reason) -> int:
    """--precision bf16 / fp16: a gated reduced-precision variant (calibration/precision_gate.py)."""
    from edgegen.calibration.gate import GateSettings
    from edgegen.calibration.precision_gate import BUDGETS, PrecisionRequest, add_precision
    from edgegen.config import parse_choices
    from edgegen.errors import EdgegenError
    if args.precision not in BUDGETS:
        raise EdgegenError(f"unknown precision '{args.precision}' (choose int8, {', '.join(BUDGETS)})")
    given = args.formats if args.formats != "onnx,openvino" else None  # the int8 default: every format here
    report = add_precision(PrecisionRequest(
        Path(args.bundle), args.precision,
        formats=parse_choices(given, ["onnx", "openvino"], "format") if given else None,
        budget=_budget(args, BUDGETS[args.precision]),
        gate=GateSettings(n=args.n, drift_n=args.drift_n, seed=args.seed, speed_batch=args.speed_batch,
                          threads=args.threads),
        allow_over_budget=args.allow_over_budget, progress=not args.quiet, scorer=scorer,
        no_scorer_reason=no_scorer_reason or ""))
    p = args.precision
    for fmt, r in report["formats"].items():
        line = f"drift {r['drift']['mean_abs']:.4f} mean abs"
        if "fid" in r:
            line += f", FID {r['fid']['fp32']:.2f} -> {r['fid'][p]:.2f} ({100 * r['fid']['rise']:+.1f}%)"
        if "accuracy" in r:
            line += f", accuracy {-r['accuracy']['drop_points']:+.1f} points"
        line += f", {r['speed']['speedup']:.2f}x at batch {r['speed']['batch']}, ran {r['ran'].get('ran')}"
        print(f"{fmt:9s} {p}  {line}  {'PASS' if r['passed'] else 'OVER BUDGET'}")
    print(f"wrote {args.bundle}/calibration/precision-{p}.json and the {p} entries "
          f"({'passed' if report['passed'] else 'over budget'})")
    return 0


def _train_parsers(t) -> None:
    tsub = t.add_subparsers(dest="model", required=True, parser_class=Parser, metavar="MODEL")
    from edgegen.config import add_flags
    from edgegen.train.families import get_family
    for name in _families():
        fam = get_family(name)
        fp = tsub.add_parser(name, help=(fam.__doc__ or "").strip().splitlines()[0])
        fp.add_argument("--preset", default="small", choices=fam.PRESETS)
        fp.add_argument("--data", default=None, help="digits, fashion, moons or folder:PATH (default: the preset's)")
        fp.add_argument("--out", default=None, help="run folder (default runs/MODEL-PRESET)")
        fp.add_argument("--quiet", action="store_true", help="no progress bar")
        add_flags(fp, type(fam.preset(fam.PRESETS[0])))
        fp.set_defaults(func=cmd_train)


def cmd_train_unavailable(args) -> int:
    raise EdgegenError("edgegen train needs the Python package 'torch': pip install 'edgegen[train]'")


def build_parser(full_train: bool = True) -> Parser:
    from edgegen import __version__
    p = Parser(prog="edgegen", description="Train, export and run generative models on device.")
    p.add_argument("--version", action="version", version=f"edgegen {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    t = sub.add_parser("train", help="train a model family with a preset")
    if not full_train or importlib.util.find_spec("torch") is None:
        # Building the family flags imports every recipe (torch): only `edgegen train` pays for it.
        t.add_argument("model", nargs="?")
        t.add_argument("rest", nargs=argparse.REMAINDER)
        t.set_defaults(func=cmd_train_unavailable)
    else:
        _train_parsers(t)

    e = sub.add_parser("export", help="export a training run to a bundle (with parity gate)")
    e.add_argument("run")
    e.add_argument("--format", default="onnx,openvino",
                   help="comma list of onnx, openvino, aoti, coreml, tensorrt, npu, executorch")
    e.add_argument("--static-batches", default=None,
                   help="batch sizes of the static-shape targets (coreml, npu), e.g. 1,8,64 (the default)")
    e.add_argument("--executorch-delegates", default=None,
                   help="with --format executorch: the Core ML / Vulkan programs written beside the XNNPACK one, "
                        "coreml,vulkan (the default), coreml, vulkan or none (Vulkan lowering is slow)")
    e.add_argument("--plans", default=None,
                   help="sampler plans to store, e.g. ddim-10,ddim-25,ddim-50,ddpm, and image-to-image / inpainting "
                        "edits of them, e.g. ddim-50@strength0.6, ddim-50@inpaint (default: the family's set); "
                        "the native runtime and the web page run only stored plans (edgegen-run --list-plans)")
    e.add_argument("--out", default=None, help="bundle folder (default bundles/RUN_NAME)")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=cmd_export)

    im = sub.add_parser("import", help="import a diffusers pipeline folder (save_pretrained), or your own "
                        "nn.Module (--module), as a bundle (with parity gate)")
    im.add_argument("path", nargs="?", default=None,
                    help="folder with model_index.json (DDPMPipeline, DDIMPipeline, StableDiffusionPipeline)")
    im.add_argument("--module", default=None, help="FILE.py:CLASS, your own denoiser: forward(x, t[, y]) -> a "
                    "tensor shaped like x (instead of PATH)")
    im.add_argument("--weights", default=None, help="with --module: its state dict, safetensors (default: random)")
    im.add_argument("--scheduler", default=None, help="with --module: a diffusers scheduler class name, "
                    "scheduler_config.json or JSON object (prediction type, betas, spacing)")
    im.add_argument("--shape", default=None, help="with --module: the sample shape C,H,W")
    im.add_argument("--num-classes", type=int, default=None, help="with --module: class labels y in [0, K)")
    im.add_argument("--null-label", action="store_true", help="with --module: label K means unconditional "
                    "(classifier-free guidance)")
    im.add_argument("--kwargs", default=None, help="with --module: the class's constructor arguments, JSON")
    im.add_argument("--prediction-type", default=None, choices=("epsilon", "v_prediction", "sample"),
                    help="with --module: overrides the scheduler config's")
    im.add_argument("--steps", type=int, default=None, help="with --module: the bundle's default steps")
    im.add_argument("--trust-code", action="store_true", help="with --module: read --weights saved by torch.save "
                    "(a pickle) with torch.load(weights_only=True)")
    im.add_argument("--format", default="onnx,openvino", help="comma list of export formats, as for export")
    im.add_argument("--out", default=None, help="bundle folder (default bundles/FOLDER_NAME)")
    im.add_argument("--sampler", default=None, help="the bundle's default sampler (default: the one equivalent to "
                    "the pipeline's scheduler; needed for PNDMScheduler and LMSDiscreteScheduler)")
    im.add_argument("--quiet", action="store_true")
    im.set_defaults(func=cmd_import)

    def sampling_flags(sp, n_default):
        from edgegen.runtimes.samplers import processes, samplers
        sp.add_argument("--sampler", default=None, help="; ".join(
            f"{', '.join(samplers(p))} ({p})" for p in processes()) + " (default: the bundle's)")
        sp.add_argument("--steps", type=int, default=None, help="sampling steps (default: the bundle's)")
        sp.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale w")
        sp.add_argument("--n", type=int, default=n_default, help="number of samples")
        sp.add_argument("--seed", type=int, default=0)
        sp.add_argument("--batch-size", type=int, default=64)
        sp.add_argument("--quiet", action="store_true")

    s = sub.add_parser("sample", help="generate samples from a bundle")
    s.add_argument("bundle")
    s.add_argument("--backend", default=None,
                   help="torch, onnxruntime, openvino, native, torch-aoti, coreml or tensorrt "
                        "(default: onnxruntime for bundles, torch for runs)")
    s.add_argument("--precision", default="fp32")
    s.add_argument("--label", type=int, default=None, help="class label for every sample (default: 0..9 cycled)")
    s.add_argument("--eta", type=float, default=None, help="DDIM eta (0 = deterministic)")
    s.add_argument("--snr", type=float, default=None, help="Langevin corrector SNR of the sde pc sampler")
    s.add_argument("--corrector", choices=("snr", "fixed"), default=None,
                   help="sde pc corrector step rule: snr (per-sample norms, Song et al.; images) or fixed "
                        "(annealed 2 alpha (snr sigma_t)^2; low-dimensional data such as moons)")
    s.add_argument("--providers", default=None, help="onnxruntime execution providers, e.g. cpu or qnn,cpu")
    s.add_argument("--mode", choices=("latency", "throughput"), default="latency", help="onnxruntime, openvino: "
                   "throughput splits each network call's batch across --streams parallel requests (same samples)")
    s.add_argument("--streams", type=int, default=0, help="throughput mode's parallel requests (default: one per core)")
    s.add_argument("--device", default=None, help="openvino device (CPU, GPU, NPU, AUTO) or torch device "
                                                   "(cpu, cuda: the whole plan in a CUDA graph)")
    for stage, what in (("text-encoder", "the text encoder"), ("denoiser", "the generator's network"),
                        ("decoder", "the decoder and image encoder")):
        s.add_argument(f"--{stage}-device", default=None, help=f"--backend native: OpenVINO device of {what} "
                       "(default --device)")
    s.add_argument("--out", default="samples.png", help="PNG grid; the raw array goes next to it as .npy")
    s.add_argument("--trust-code", action="store_true", help="load code-bearing formats (AOTInductor .pt2, "
                   "TensorRT engines) from a bundle this machine did not build (SECURITY.md)")
    s.add_argument("--prompt", default=None, help="text prompt (dalle), e.g. \"a handwritten seven\"")
    s.add_argument("--temperature", type=float, default=None, help="token models: 0 = greedy (default: bundle's)")
    s.add_argument("--top-k", type=int, default=None, help="token models: keep the k most likely tokens (k >= 1)")
    s.add_argument("--top-p", type=float, default=None, help="token models: nucleus mass in (0, 1]")
    s.add_argument("--init-image", default=None, help="image-to-image: start from this PNG (the model's size "
                   "and channels)")
    s.add_argument("--strength", type=float, default=None, help="image-to-image: how much of the plan runs, "
                   "in (0, 1] (default 0.6; with --mask 1)")
    s.add_argument("--mask", default=None, help="inpainting: binary PNG, white = generate, black = keep")
    sampling_flags(s, 64)
    s.set_defaults(func=cmd_sample)

    v = sub.add_parser("eval", help="score a bundle or run with its data set's evaluator")
    v.add_argument("path")
    v.add_argument("--backend", default=None, help="default: onnxruntime for bundles, torch for runs")
    v.add_argument("--json", default=None, help="also write the scores to this file")
    sampling_flags(v, 500)
    v.set_defaults(func=cmd_eval)

    i = sub.add_parser("info", help="describe a bundle")
    i.add_argument("bundle")
    i.set_defaults(func=cmd_info)

    tk = sub.add_parser("tokenize", help="a prompt's token ids for the native runtime (edgegen-run --prompt-tokens)")
    tk.add_argument("bundle")
    tk.add_argument("prompt")
    tk.set_defaults(func=cmd_tokenize)

    w = sub.add_parser("serve-web", help="serve the web page (onnxruntime-web in the browser) and a bundle on 127.0.0.1")
    w.add_argument("bundle")
    w.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0: any free one)")
    w.add_argument("--web-dir", default=None, help="the page's folder (default: web/ of this checkout)")
    w.add_argument("--quiet", action="store_true", help="do not log requests")
    w.set_defaults(func=cmd_serve_web)

    d = sub.add_parser("demo", help="train, export, sample on every backend, score, report")
    d.add_argument("--model", default="ddpm", type=_trainable_family, metavar="{" + ",".join(_families()) + "}")
    d.add_argument("--preset", default="small", help="model preset (tiny is for tests: its samples are noise)")
    d.add_argument("--out", default="demo")
    d.add_argument("--bundle", default=None, help="score this exported bundle as it is (of --model's family): "
                   "nothing is trained, exported or written there")
    d.add_argument("--n", type=int, default=500, help="samples per backend for scoring")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=cmd_demo)

    pr = sub.add_parser("profile", help="latency per backend and precision, baselines, roofline")
    pr.add_argument("bundle")
    pr.add_argument("--backends", default=None, help="comma list (default: every registered backend; "
                    "unavailable ones are skipped with the reason)")
    pr.add_argument("--precisions", default=None, help="comma list of fp32, bf16, fp16, int8 (default fp32; with "
                    "--target-quality: every precision the bundle has, and bf16-hint: OpenVINO fp32 with a bf16 hint)")
    pr.add_argument("--batch", default=None, help="comma list of batch sizes (default 1,16; --target-quality: 16)")
    pr.add_argument("--steps", type=int, default=None, help="default: the sampler's default steps in the bundle")
    pr.add_argument("--sampler", default=None, help="default: the bundle's")
    pr.add_argument("--repeat", type=int, default=None, help="timed runs per configuration (default 20; "
                    "--target-quality: 3 interleaved rounds)")
    pr.add_argument("--mode", default=None, help="comma list of latency (default), throughput: a call's batch split "
                    "across --streams parallel requests (onnxruntime, openvino)")
    pr.add_argument("--streams", type=int, default=0, help="throughput mode's parallel requests (default: one per thread)")
    pr.add_argument("--target-quality", action="store_true", help="find the fastest backend x precision x sampler x "
                    "steps whose FID stays within --fid-rise and accuracy within --accuracy-drop of fp32 DDIM-50 "
                    "(target-quality.md/.json in --out)")
    pr.add_argument("--plans", default=None, help="--target-quality candidates, comma list of SAMPLER-STEPS, e.g. "
                    "dpmpp_2m-10,dpmpp_2m:noclip-10 (default: a short list; --full: the frontier's)")
    pr.add_argument("--tq-n", type=int, default=None, help="--target-quality: samples scored per candidate "
                    "(default 200; --full: 500)")
    pr.add_argument("--score-all", action="store_true", help="--target-quality: score every candidate, not only "
                    "until the fastest within budget")
    pr.add_argument("--full", action="store_true", help="--target-quality: the frontier's plans, n = 500, every "
                    "candidate scored")
    pr.add_argument("--fid-rise", type=float, default=0.10, help="--target-quality budget: FID rise (fraction)")
    pr.add_argument("--accuracy-drop", type=float, default=1.0, help="--target-quality budget: accuracy drop (points)")
    pr.add_argument("--seed", type=int, default=0)
    pr.add_argument("--rounds", type=int, default=1, help="split the repeats into rounds that interleave the "
                    "configurations in time (fairer on a shared, noisy machine)")
    pr.add_argument("--threads", type=int, default=0,
                    help="intra-op threads for every runtime and baseline (default 0: each runtime's own default)")
    pr.add_argument("--no-baselines", action="store_true", help="skip the PyTorch eager and diffusers+ORT loops")
    pr.add_argument("--no-plots", action="store_true")
    pr.add_argument("--out", default=None, help="output folder, replaced (default profile; --target-quality: "
                    "target-quality)")
    pr.add_argument("--quiet", action="store_true")
    pr.set_defaults(func=cmd_profile)

    c = sub.add_parser("calibrate", help="add int8 models to a bundle (trajectory calibration, quality gate)")
    c.add_argument("bundle")
    c.add_argument("--calls", type=int, default=256, help="network calls in the calibration set")
    c.add_argument("--formats", default="onnx,openvino",
                   help="comma list of onnx, openvino, executorch, tensorrt, coreml")
    c.add_argument("--n", type=int, default=500, help="samples for the gate's FID and (prompt) accuracy")
    c.add_argument("--drift-n", type=int, default=16, help="trajectories for the gate's drift")
    c.add_argument("--precision", default="int8", help="int8 (quantize), or bf16 / fp16: a gated float variant "
                   "(OpenVINO precision hint, ORT fp16 model) with its own budget")
    c.add_argument("--max-accuracy-drop", type=float, default=None,
                   help="budget: class accuracy drop in points (default 2; bf16/fp16: 1)")
    c.add_argument("--max-fid-rise", type=float, default=None,
                   help="budget: relative digit-FID rise (0.15 = 15%%; default 0.15, bf16/fp16: 0.10)")
    c.add_argument("--max-drift", type=float, default=None,
                   help="budget: mean abs trajectory drift (default 0.1; bf16: 0.05, fp16: 0.02)")
    c.add_argument("--ranges", default="minmax", choices=["minmax", "percentile"], help="activation ranges")
    c.add_argument("--no-mixed-precision", action="store_true", help="do not keep sensitive layers in float")
    c.add_argument("--no-naive", action="store_true", help="skip the naive-calibration baseline")
    c.add_argument("--allow-over-budget", action="store_true", help="keep the int8 models even when over budget")
    c.add_argument("--coreml-batches", default=None, help="static batches of the Core ML packages (default: the "
                   "bundle's, else 1)")
    c.add_argument("--speed-batch", type=int, default=16)
    c.add_argument("--threads", type=int, default=1, help="intra-op threads for the gate and speed figures")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--quiet", action="store_true")
    c.set_defaults(func=cmd_calibrate)
    return p


# a missing package -> the extra that installs it (pyproject.toml)
EXTRAS = {"torch": "train", "sklearn": "train", "scipy": "train", "openvino": "openvino", "onnx": "export",
          "onnxscript": "export", "coremltools": "coreml", "nncf": "calibrate", "matplotlib": "bench",
          "diffusers": "import", "transformers": "import"}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"] and len(argv) > 1:  # imported-only families: not offered, pointed to `import`
        from edgegen.train.families import NOT_TRAINABLE
        if argv[1] in NOT_TRAINABLE:
            print(f"edgegen: error: {NOT_TRAINABLE[argv[1]]}", file=sys.stderr)
            return 2
    args = build_parser(full_train=not argv or argv[0] in ("train", "-h", "--help")).parse_args(argv)
    try:
        return args.func(args)
    except EdgegenError as e:
        print(f"edgegen: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        top = (e.name or "").split(".")[0]
        if top not in EXTRAS:
            raise
        print(f"edgegen: error: this command needs the Python package '{top}': "
              f"pip install 'edgegen[{EXTRAS[top]}]'", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk outside the atomic writers (edgegen.paths), e.g. in a scratch folder
        from edgegen.paths import is_disk_full
        if not is_disk_full(e):
            raise
        print(f"edgegen: error: {e} (the disk is full or a file-size limit was hit)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgegen: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
