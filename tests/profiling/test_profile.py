"""edgegen profile on the tiny bundle: the report schema, the plots, skips and bad input.
No timing is asserted (speed goals live in benchmarks/)."""
from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from edgegen.errors import EdgegenError
from edgegen.profiling.report import validate
from edgegen.profiling.runner import ProfileRequest, check_request

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def profile_dir(tiny_bundle, tmp_path_factory):
    out = tmp_path_factory.mktemp("profile") / "prof"
    proc = subprocess.run([sys.executable, "-m", "edgegen.cli", "profile", str(tiny_bundle),
                           "--backends", "onnxruntime", "--precisions", "fp32,int8", "--batch", "2",
                           "--steps", "4", "--repeat", "2", "--rounds", "2", "--out", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return out


def test_profile_writes_report_markdown_and_plots(profile_dir):
    report = json.loads((profile_dir / "report.json").read_text())
    validate(report)
    ok = [r for r in report["results"] if r["status"] == "ok"]
    names = {(r["name"], r["batch"]) for r in ok}
    assert ("onnxruntime/fp32", 2) in names
    assert {("baseline:torch-eager", 2), ("baseline:diffusers-ort", 2)} <= names
    for r in ok:
        assert r["calls_per_run"] == 4
        assert r["rounds"] == 2 and r["run_ms"]["n"] == 2  # one timed run per round, merged
        assert r["load_seconds"] > 0 and r["first_call_seconds"] > 0 and r["peak_rss_mb"] > 50
        s = r["latency_per_sample_ms"]
        assert 0 < s["p50"] <= s["p90"] <= s["p99"]
        assert set(r["speedup_vs"]) == {"torch-eager", "diffusers-ort"}
    ort = next(r for r in ok if r["name"] == "onnxruntime/fp32" and r["batch"] == 2)
    assert len(ort["timeline"]) == 4 and ort["per_step_derived"] is False
    assert ort["flops_per_call"] == report["flops"]["2"]["flops"] > 0
    assert 0 < ort["peak_fraction"] and ort["model_bytes"] > 0
    eager = next(r for r in ok if r["name"] == "baseline:torch-eager" and r["batch"] == 2)
    # the researcher's torch loop runs the same DDIM from the same x_T as edgegen
    assert eager["agreement"]["reference"] == "onnxruntime/fp32" and eager["agreement"]["max_abs_diff"] < 1e-3
    skipped = {s["name"]: s["reason"] for s in report["skipped"]}
    assert "no int8 onnx model" in skipped["onnxruntime/int8"]
    md = (profile_dir / "report.md").read_text()
    assert "| onnxruntime/fp32 | 2 |" in md and "Roofline" in md and "onnxruntime/int8" in md
    for png in ("latency.png", "timeline.png", "roofline.png"):
        assert (profile_dir / png).read_bytes()[:8] == PNG


def test_validate_names_the_broken_field(profile_dir):
    report = json.loads((profile_dir / "report.json").read_text())
    bad = copy.deepcopy(report)
    del bad["results"][0]["latency_per_sample_ms"]
    with pytest.raises(EdgegenError, match="latency_per_sample_ms"):
        validate(bad)
    bad = copy.deepcopy(report)
    bad["results"][0]["host_overhead_fraction"] = 1.5
    with pytest.raises(EdgegenError, match="overhead"):
        validate(bad)
    bad = copy.deepcopy(report)
    bad["skipped"].append({"name": "x", "status": "skipped"})
    with pytest.raises(EdgegenError, match="no reason"):
        validate(bad)


@pytest.mark.parametrize("change, message", [
    ({"backends": ["tpu"]}, "unknown backend 'tpu'"),
    ({"precisions": ["int4"]}, "unknown precision 'int4'"),
    ({"batches": [0]}, "batch sizes must be positive"),
    ({"steps": 0}, "steps must be >= 1"),
    ({"repeat": 0}, "repeat must be >= 1"),
    ({"repeat": 2, "rounds": 3}, "rounds must be between 1 and repeat"),
    ({"threads": -1}, "threads must be >= 0"),
])
def test_bad_requests(change, message):
    req = ProfileRequest(bundle="unused")
    for k, v in change.items():
        setattr(req, k, v)
    with pytest.raises(EdgegenError, match=message):
        check_request(req)


@pytest.mark.parametrize("args, message", [
    (["--batch", "1,x"], "--batch must be a comma list of integers"),
    (["--backends", "tpu"], "unknown backend 'tpu'"),
])
def test_cli_bad_input_one_line(tiny_bundle, tmp_path, args, message):
    out = tmp_path / "prof"
    proc = subprocess.run([sys.executable, "-m", "edgegen.cli", "profile", str(tiny_bundle), *args, "--out", str(out)],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and message in proc.stderr
    assert not out.exists()


def test_cli_missing_bundle(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "edgegen.cli", "profile", str(tmp_path / "nope"), "--out",
                           str(tmp_path / "prof")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "edgegen: error:" in proc.stderr and not (tmp_path / "prof").exists()
