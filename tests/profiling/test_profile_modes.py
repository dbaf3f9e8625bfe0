"""edgegen profile --mode latency,throughput: throughput rows beside latency ones, with latency mode's
samples (the report's agreement column), and a one-line error for a bad mode. No timing asserted."""
from __future__ import annotations

import json
import subprocess
import sys

from edgegen.profiling.report import validate


def test_profile_throughput_rows_give_latency_samples(tiny_bundle, tmp_path):
    out = tmp_path / "prof"
    proc = subprocess.run([sys.executable, "-m", "edgegen.cli", "profile", str(tiny_bundle), "--backends",
                           "onnxruntime,openvino", "--mode", "latency,throughput", "--streams", "2", "--threads", "2",
                           "--batch", "4", "--steps", "3", "--repeat", "1", "--no-baselines", "--no-plots",
                           "--out", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    validate(report)
    rows = {r["name"]: r for r in report["results"]}
    assert set(rows) == {"onnxruntime/fp32", "onnxruntime/fp32/throughput", "openvino/fp32", "openvino/fp32/throughput"}
    assert all(r["status"] == "ok" for r in rows.values()), [r.get("reason") for r in rows.values()]
    assert rows["openvino/fp32/throughput"]["mode"] == "throughput" and rows["openvino/fp32"]["mode"] == "latency"
    assert report["request"]["modes"] == ["latency", "throughput"] and report["request"]["streams"] == 2
    # agreement: every row against the first (onnxruntime fp32 latency); OpenVINO differs from it by
    # float rounding, but throughput mode of a backend is that backend's latency mode
    for r in rows.values():
        assert r["agreement"]["max_abs_diff"] <= 1e-4
    assert rows["onnxruntime/fp32/throughput"]["agreement"]["max_abs_diff"] <= 1e-5
    assert "onnxruntime/fp32/throughput" in (out / "report.md").read_text()


def test_profile_bad_mode_is_one_line(tiny_bundle, tmp_path):
    out = tmp_path / "prof"
    proc = subprocess.run([sys.executable, "-m", "edgegen.cli", "profile", str(tiny_bundle), "--mode", "fast",
                           "--out", str(out)], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "unknown mode 'fast'" in proc.stderr
    assert not out.exists()
