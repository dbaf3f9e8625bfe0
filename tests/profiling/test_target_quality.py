"""edgegen profile --target-quality on the tiny DDPM: the report's structure, and that the chosen row
really is within the budget it reports and the fastest such row. No timing is asserted."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgegen.errors import EdgegenError
from edgegen.profiling import frontier
from edgegen.profiling.target_quality import TargetRequest, check_request, find, markdown, write


@pytest.fixture(scope="module")
def scorer(evaluator):
    from edgegen.train.evaluate import evaluate_pipeline

    def score(pipe, **kw):
        return evaluate_pipeline(pipe, evaluator=evaluator, reconstruct=False, **kw)[0]
    return score


@pytest.fixture(scope="module")
def report(tiny_bundle, scorer, tmp_path_factory):
    req = TargetRequest(bundle=str(tiny_bundle), backends=["onnxruntime", "openvino"],
                        plans=["ddim-2", "dpmpp_2m-3", "dpmpp_2m:noclip-3", "ddim-4"], reference="ddim-6",
                        modes=["latency", "throughput"], streams=2, threads=1, batches=[4], n=12, repeat=2,
                        score_all=True)
    rep = find(req, scorer, progress=False)
    write(rep, tmp_path_factory.mktemp("tq") / "out")
    return rep


def test_report_structure(report):
    assert report["schema"] == "edgegen.target-quality/1"
    json.dumps(report)  # plain JSON
    m = report["machine"]
    assert m["cpu"] and m["usable_cores"] >= 1 and len(m["load_before"]) == 3 and len(m["load_after"]) == 3
    ref, b = report["reference"], report["budget"]
    assert ref["name"] == "onnxruntime fp32 ddim-6" and ref["n"] == 12
    assert b["max_fid"] == pytest.approx(1.1 * ref["fid"]) and b["min_accuracy"] == pytest.approx(ref["accuracy"] - 0.01)
    rows = report["candidates"]
    names = {r["name"] for r in rows}
    for backend in ("onnxruntime", "openvino"):
        for mode in ("", " throughput"):
            assert {f"{backend} fp32{mode} {p}" for p in ("ddim-2", "dpmpp_2m-3", "dpmpp_2m:noclip-3", "ddim-4")} <= names
    assert "onnxruntime fp32 ddim-6" in names  # the reference is always a candidate
    for r in rows:
        assert r["batch"] == 4 and r["runs"] == 2 and r["ms_per_sample"] > 0 and r["scored"]
        assert r["within_budget"] == frontier.Budget().within(r, ref)  # the verdict is the budget's
    # throughput mode computes latency mode's samples: one score for both
    by = {r["name"]: r for r in rows}
    assert by["openvino fp32 throughput ddim-2"]["fid"] == by["openvino fp32 ddim-2"]["fid"]
    md = markdown(report)
    assert "# Target quality" in md and "| configuration | ms/sample |" in md and ref["name"] in md


def test_chosen_is_within_budget_and_the_fastest_such(report):
    rows = report["candidates"]
    chosen = report["chosen"]["4"]
    assert chosen is not None
    row = next(r for r in rows if r["name"] == chosen)
    b = report["budget"]
    assert row["within_budget"] and row["fid"] <= b["max_fid"] and row["accuracy"] >= b["min_accuracy"]
    faster = [r for r in rows if r["ms_per_sample"] < row["ms_per_sample"]]
    assert all(r["scored"] and not r["within_budget"] for r in faster)
    assert f"**{chosen}**" in markdown(report)


def test_stops_scoring_at_the_first_within_budget(tiny_bundle, scorer):
    calls = []

    def counting(pipe, **kw):
        calls.append(kw["steps"])
        return scorer(pipe, **kw)
    req = TargetRequest(bundle=str(tiny_bundle), backends=["onnxruntime"], precisions=["fp32"],
                        plans=["ddim-2", "ddim-3"], reference="ddim-3", threads=1, batches=[2], n=8, repeat=1)
    rep = find(req, counting, progress=False)
    # ddim-3 on the reference variant is the reference: within budget by definition, so at most the
    # reference and ddim-2 are scored, and ddim-3 never twice
    assert sorted(calls) in ([2, 3], [3])
    chosen = next(r for r in rep["candidates"] if r["name"] == rep["chosen"]["2"])
    assert chosen["within_budget"]
    unscored = [r for r in rep["candidates"] if not r["scored"]]
    assert all(r["ms_per_sample"] >= chosen["ms_per_sample"] for r in unscored)


@pytest.mark.parametrize("change, message", [
    ({"plans": ["ddim"]}, "a plan is SAMPLER-STEPS"),
    ({"plans": ["ddim:fast-4"]}, "unknown sampler flag"),
    ({"modes": ["fast"]}, "unknown mode 'fast'"),
    ({"precisions": ["fp8"]}, "unknown precision 'fp8'"),
    ({"n": 1}, "n must be >= 2"),
    ({"backends": ["tpu"]}, "unknown backend 'tpu'"),
])
def test_bad_request(change, message):
    with pytest.raises(EdgegenError, match=message):
        check_request(TargetRequest(bundle="b", **change))


@pytest.mark.parametrize("args, message", [
    (["--plans", "dpmpp_2m"], "a plan is SAMPLER-STEPS"),
    (["--steps", "10"], "not --sampler/--steps"),
])
def test_cli_bad_input_is_one_line(tiny_bundle, tmp_path, args, message):
    out = tmp_path / "tq"
    proc = subprocess.run([sys.executable, "-m", "edgegen.cli", "profile", str(tiny_bundle), "--target-quality",
                           *args, "--out", str(out)],
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and message in proc.stderr
    assert not out.exists()
