"""The CLI as a user runs it: happy paths, and bad input -> one line, exit 2, nothing written."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest


def edgegen(*args, cwd=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "edgegen.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout, stdin=subprocess.DEVNULL)


def assert_one_line_error(res, needle):
    assert res.returncode == 2, (res.returncode, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgegen: error:"), res.stderr
    assert needle in lines[0]
    assert "Traceback" not in res.stderr


def test_sample_writes_grid_and_array(tiny_bundle, tmp_path):
    out = tmp_path / "grid.png"
    res = edgegen("sample", tiny_bundle, "--backend", "openvino", "--sampler", "ddim", "--steps", "10",
                  "--n", "6", "--seed", "0", "--label", "3", "--guidance", "2.0", "--out", out, "--quiet")
    assert res.returncode == 0, res.stderr
    arr = np.load(tmp_path / "grid.npy")
    assert arr.shape == (6, 1, 16, 16) and arr.dtype == np.float32
    from PIL import Image
    assert Image.open(out).size[0] > 16


def test_info(tiny_bundle):
    res = edgegen("info", tiny_bundle)
    assert res.returncode == 0 and "ddim-50" in res.stdout and "openvino/fp32" in res.stdout


def test_eval_prints_scores_with_references(tiny_bundle, evaluator_cache, tmp_path):
    out = tmp_path / "scores.json"
    res = subprocess.run([sys.executable, "-m", "edgegen.cli", "eval", str(tiny_bundle), "--n", "20",
                          "--steps", "5", "--quiet", "--json", str(out)], capture_output=True, text=True,
                         env={**__import__("os").environ, "EDGEGEN_CACHE": str(evaluator_cache)}, timeout=600)
    assert res.returncode == 0, res.stderr
    scores = json.loads(out.read_text())
    assert scores["n"] == 20 and 0 <= scores["accuracy"] <= 1 and scores["fid"] > 0
    assert scores["references"]["fid_noise_vs_test"] > scores["references"]["fid_train_vs_test"]
    assert scores["plan"] == "ddim-5" and scores["backend"] == "onnxruntime"


@pytest.mark.parametrize("args,needle", [
    (["train", "vae"], "invalid choice: 'vae'"),
    (["sample", "{bundle}", "--backend", "tpu"], "unknown backend 'tpu'"),
    (["export", "{run}", "--format", "tflite"], "unknown export format 'tflite'"),
    (["sample", "{bundle}", "--sampler", "euler"], "unknown sampler 'euler'"),
    (["sample", "{bundle}", "--label", "10"], "label 10 is out of range"),
    (["sample", "{bundle}", "--label", "-1"], "label -1 is out of range"),
    (["sample", "{bundle}", "--n", "0"], "n must be a positive integer"),
    (["sample", "{bundle}", "--n", "-3"], "n must be a positive integer"),
    (["sample", "{bundle}", "--steps", "0"], "steps must be"),
    (["sample", "{bundle}", "--providers", "qnn"], "execution provider 'qnn' is not available"),
    (["sample", "{missing}"], "not found"),
    (["export", "{missing}"], "not a training run"),
    (["sample", "{bundle}", "--seed", "-1"], "seed must be"),
])
def test_bad_input(args, needle, tiny_bundle, tiny_run, tmp_path):
    sub = {"{bundle}": str(tiny_bundle), "{run}": str(tiny_run), "{missing}": str(tmp_path / "nope")}
    res = edgegen(*[sub.get(a, a) for a in args], "--out" if args[0] == "export" else "--quiet",
                  *([tmp_path / "out"] if args[0] == "export" else []), cwd=tmp_path)
    assert_one_line_error(res, needle)
    assert not (tmp_path / "out").exists() and not (tmp_path / "samples.png").exists()


def test_corrupt_checkpoint(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "model.safetensors").write_bytes(b"garbage" * 10)
    res = edgegen("export", run, "--out", tmp_path / "b")
    assert_one_line_error(res, "corrupt or unreadable checkpoint")
    assert not (tmp_path / "b").exists()
    (run / "model.safetensors").unlink()
    assert_one_line_error(edgegen("export", run, "--out", tmp_path / "b"), "missing checkpoint")


def test_sha_mismatch_from_cli(tiny_bundle, tmp_path):
    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    xml = b / "openvino" / "denoiser.xml"
    xml.write_text(xml.read_text().replace("denoiser", "denoisex", 1) if "denoiser" in xml.read_text()
                   else xml.read_text() + " ")
    res = edgegen("sample", b, "--backend", "openvino", "--out", tmp_path / "s.png")
    assert_one_line_error(res, "sha256 mismatch")
    assert not (tmp_path / "s.png").exists()


def test_malformed_manifest_from_cli(tiny_bundle, tmp_path):
    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    (b / "manifest.json").write_text("[1, 2")
    assert_one_line_error(edgegen("info", b), "malformed")


@pytest.mark.parametrize("flag,value,needle", [
    ("--train.steps", "0", "train.steps must be >= 1"),
    ("--train.steps", "many", "train.steps must be int"),
    ("--data.channels", "2", "channels must be 1 or 3"),
    ("--schedule.kind", "sigmoid", "unknown beta schedule"),
])
def test_bad_training_config(flag, value, needle, tmp_path):
    res = edgegen("train", "ddpm", "--preset", "tiny", "--quiet", "--out", tmp_path / "run", flag, value)
    assert_one_line_error(res, needle)
    assert not (tmp_path / "run").exists()


def test_demo_writes_report_and_reuses_cache(evaluator, evaluator_cache, tmp_path):
    """The main job on the tiny preset: fresh, then cached (the real demo uses the small preset)."""
    env = {**__import__("os").environ, "EDGEGEN_CACHE": str(tmp_path / "runs")}
    shutil.copytree(evaluator_cache / "evaluator", tmp_path / "runs" / "evaluator")  # skip retraining the CNN
    cmd = [sys.executable, "-m", "edgegen.cli", "demo", "--preset", "tiny", "--n", "20", "--quiet"]
    first = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "training ddpm (tiny preset)" in first.stdout and "exporting" in first.stdout
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    # native too when libedgegen is built; never the targets the demo does not export (aoti, ...)
    assert set(report["backends"]) - {"native"} == {"torch", "onnxruntime", "openvino"}
    assert report["parity"]["passed"]
    for s in report["backends"].values():
        assert s["n"] == 20 and s["plan"] == "ddim-50" and s["latency"]["network_calls"] == 50
    assert (tmp_path / "demo" / "samples.png").stat().st_size > 0
    assert "| onnxruntime |" in (tmp_path / "demo" / "report.md").read_text()
    second = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "reusing trained model" in second.stdout and "reusing bundle" in second.stdout
