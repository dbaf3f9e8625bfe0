"""Calibration data from trajectories, the artifact, and the conditioning path."""
import numpy as np
import onnx
import pytest

from edgegen.calibration import artifact, record
from edgegen.calibration.graph import conditioning_nodes, quantizable_nodes
from edgegen.errors import EdgegenError
from edgegen.runtimes.api import open_pipeline


def test_record_is_stratified_over_steps_and_labels(tiny_bundle):
    pipe = open_pipeline(tiny_bundle, "onnxruntime")
    cs = record.record(pipe, 120)
    assert len(cs) == 120 and cs.inputs["x"].shape == (120, 1, 16, 16)
    assert cs.provenance["steps_covered"] == 50 and cs.provenance["labels_covered"] == list(range(10))
    # steps spread evenly: every step has 2 or 3 rows; t follows the plan (from T-1 down to 0)
    counts = np.bincount(cs.step, minlength=50)
    assert counts.min() >= 2 and counts.max() <= 3
    assert cs.inputs["t"].max() == 999.0 and cs.inputs["t"].min() == 0.0
    # the rows really are the trajectory's inputs: step 0 is the initial noise of that trajectory
    plan = pipe.plan()
    first = cs.inputs["x"][cs.step == 0][0]
    traj = np.zeros_like(first)
    seen = []
    pipe.sample(1, seed=record.RECORD_SEED, labels=int(cs.inputs["y"][0]), sampler=plan.sampler,
                steps=plan.params["steps"], on_eval=lambda i, x, t, y: seen.append(x.copy()) if i == 0 else None)
    traj = seen[0][0]
    assert np.array_equal(first, traj)


def test_empty_calibration_set_is_an_error(tiny_bundle):
    pipe = open_pipeline(tiny_bundle, "onnxruntime")
    with pytest.raises(EdgegenError, match="calibration set is empty"):
        record.record(pipe, 0)


def test_artifact_ranges_histograms_round_trip(tiny_bundle, tmp_path):
    pipe = open_pipeline(tiny_bundle, "onnxruntime")
    cs = record.record(pipe, 40)
    art = artifact.build(tiny_bundle / "onnx/denoiser.onnx", cs)
    assert "x" in art.ranges and "eps" in art.ranges
    r = art.ranges["x"]
    assert r["min"] == pytest.approx(float(cs.inputs["x"].min()))
    assert r["max"] == pytest.approx(float(cs.inputs["x"].max()))
    assert 0 < r["amax_p9999"] <= r["amax"]
    assert art.histograms["x"].sum() == cs.inputs["x"].size  # every value counted once
    art.save(tmp_path)
    back = artifact.load(tmp_path)
    assert back.ranges == art.ranges and back.provenance == art.provenance
    assert np.array_equal(back.histograms["eps"], art.histograms["eps"])
    assert np.array_equal(back.calib.inputs["x"], cs.inputs["x"]) and np.array_equal(back.calib.step, cs.step)


def test_conditioning_path_is_found_by_data_flow(tiny_bundle):
    model = onnx.load(str(tiny_bundle / "onnx/denoiser.onnx"))
    spec = open_pipeline(tiny_bundle, "onnxruntime").backend.spec
    cond = set(conditioning_nodes(model, spec))
    ops = {n.name: n.op_type for n in model.graph.node}
    assert {"Sin", "Cos", "Gather"} <= {ops[n] for n in cond}  # timestep and label embeddings
    q = quantizable_nodes(model, spec)
    assert q and not cond & set(q)
    assert {ops[n] for n in q} <= {"Conv", "ConvTranspose", "MatMul", "Gemm"}
    temb_gemms = [n for n in cond if ops[n] == "Gemm"]
    assert temb_gemms  # the embedding MLP and the per-block projections stay float
