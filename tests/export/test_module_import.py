"""edgegen import --module: a user's own nn.Module (examples/own_module/tiny_unet.py, random weights
saved to safetensors here) + a diffusers scheduler config -> a bundle that passes the parity gate
and samples the same on every runtime; against diffusers' own DDIM loop over the same module; and
the one-line refusals (nothing written).

The bundle is exported with ONNX external data forced (onnx_export.EXTERNAL_DATA_BYTES lowered: what a
> 2 GB network such as Stable Diffusion 1.5's UNet gets): the data file is a companion of the ONNX
entry, so the manifest's sha256 covers it; every runtime reads it from beside the model; a changed or
missing data file is refused. One export serves both (test time)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgegen.cli import main  # noqa: E402
from edgegen.errors import EdgegenError  # noqa: E402
from edgegen.export import onnx_export  # noqa: E402
from edgegen.manifest import sha256_file  # noqa: E402
from edgegen.runtimes import rng  # noqa: E402
from edgegen.runtimes.api import open_manifest, open_pipeline  # noqa: E402
from edgegen.runtimes.backends.native_backend import NativeBackend  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FILE = ROOT / "examples/own_module/tiny_unet.py"
KWARGS = {"width": 8, "emb": 16, "num_classes": 3}
SHAPE = (1, 8, 8)
SCHEDULER = {"_class_name": "DDIMScheduler", "num_train_timesteps": 100, "beta_schedule": "scaled_linear",
             "beta_start": 0.001, "beta_end": 0.02, "prediction_type": "v_prediction", "timestep_spacing": "trailing",
             "clip_sample": False, "set_alpha_to_one": False}
SEED, N, STEPS = 3, 4, 6
LABELS = [0, 1, 2, 1]


@pytest.fixture(autouse=True)
def allow_list(tmp_path_factory, monkeypatch):
    """This test's own trusted-code allow-list (the importer records the module's source in it)."""
    path = tmp_path_factory.getbasetemp() / "trusted-code.sha256"
    monkeypatch.setenv("EDGEGEN_TRUSTED_CODE", str(path))
    return path


def user_net():
    from edgegen.train.diffusers_family import own_class
    cls = own_class(FILE.read_text(), "TinyUNet", str(FILE))
    torch.manual_seed(1)
    net = cls(**KWARGS).eval()
    with torch.no_grad():  # visible outputs: GroupNorm-ed convs of random weights are near zero otherwise
        for p in net.parameters():
            p.mul_(1.5)
    return net


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from safetensors.torch import save_file
    path = tmp_path_factory.mktemp("own") / "tiny_unet.safetensors"
    save_file(user_net().state_dict(), str(path))
    return path


@pytest.fixture(scope="module")
def bundle(weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("b") / "own"
    allow = tmp_path_factory.getbasetemp() / "trusted-code.sha256"
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGEGEN_TRUSTED_CODE", str(allow))
    mp.setattr(onnx_export, "EXTERNAL_DATA_BYTES", 1024)  # every real network is over this
    try:
        assert main(["import", "--module", f"{FILE}:TinyUNet", "--weights", str(weights), "--kwargs",
                     json.dumps(KWARGS), "--scheduler", json.dumps(SCHEDULER), "--shape", "1,8,8", "--num-classes",
                     "3", "--null-label", "--steps", str(STEPS), "--out", str(out), "--quiet"]) == 0
    finally:
        mp.undo()
    return out


def test_bundle_describes_the_module(bundle):
    m = json.loads((bundle / "manifest.json").read_text())
    assert json.loads((bundle / "verify.json").read_text())["passed"]
    assert m["family"] == "diffusers" and m["data"]["num_classes"] == 3 and m["data"]["null_label"] == 3
    gen = m["pipeline"]["generator"]
    assert gen["process"] == "diffusers" and gen["defaults"]["sampler"] == "ddim" and gen["defaults"]["steps"] == STEPS
    comp = m["training"]["config"]["components"]["module"]
    assert comp["class"] == "TinyUNet" and comp["source"] == FILE.read_text() and comp["kwargs"] == KWARGS
    assert set(m["roles"]["denoiser"]["files"]) == {"torch", "onnx", "openvino"}


def diffusers_ddim(net, labels, guidance=1.0):
    """diffusers' DDIMScheduler loop over the user's module, initial latents Philox draw 0."""
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DDIMScheduler.from_config(SCHEDULER)
    sched.set_timesteps(STEPS)
    x = torch.from_numpy(rng.gaussian(SEED, (len(labels), *SHAPE), draw=0))
    y = torch.as_tensor(labels)
    with torch.no_grad():
        for t in sched.timesteps:
            tt = torch.full((len(labels),), float(t))
            out = net(x, tt, y)
            if guidance != 1.0:
                u = net(x, tt, torch.full_like(y, KWARGS["num_classes"]))
                out = u + guidance * (out - u)
            x = sched.step(out, t, x, eta=0.0).prev_sample
    return x.numpy()


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino", "torch", "native"])
def test_every_runtime_matches_diffusers_loop(bundle, backend):
    if backend == "native" and NativeBackend.unavailable():
        pytest.skip(f"native runtime not available: {NativeBackend.unavailable()}")
    ref = diffusers_ddim(user_net(), LABELS)
    ours = open_pipeline(bundle, backend).sample(N, seed=SEED, labels=LABELS)
    assert np.abs(ref).max() > 0.1  # a real signal, not zeros
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_guidance_through_the_null_label(bundle):
    ref = diffusers_ddim(user_net(), [0, 1, 2, 0], guidance=3.0)
    ours = open_pipeline(bundle, "onnxruntime").sample(N, seed=SEED, labels=[0, 1, 2, 0], guidance=3.0)
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_torch_backend_runs_stored_source_only_when_allow_listed(bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEGEN_TRUSTED_CODE", str(tmp_path / "empty-list"))
    with pytest.raises(EdgegenError, match="refusing to run the Python source of TinyUNet") as e:
        open_pipeline(bundle, "torch")
    assert "\n" not in str(e.value)
    open_pipeline(bundle, "onnxruntime").sample(1, seed=0, labels=[0])  # the exported files need no code


def test_trust_code_lets_the_torch_backend_run_the_stored_source(bundle, tmp_path, monkeypatch, capsys):
    """The backend option trust_code (--trust-code) stands in for the allow-list, for that call only."""
    empty = tmp_path / "empty-list"
    monkeypatch.setenv("EDGEGEN_TRUSTED_CODE", str(empty))
    ours = open_pipeline(bundle, "torch", trust_code=True).sample(N, seed=SEED, labels=LABELS)
    np.testing.assert_allclose(ours, diffusers_ddim(user_net(), LABELS), atol=1e-4)
    assert not empty.exists()  # nothing recorded: the next call without the switch is refused again
    with pytest.raises(EdgegenError, match="refusing to run the Python source"):
        open_pipeline(bundle, "torch")
    args = ["sample", str(bundle), "--backend", "torch", "--n", "2", "--quiet", "--out", str(tmp_path / "s.png")]
    assert main(args) == 2 and "refusing to run the Python source" in capsys.readouterr().err
    assert main(args + ["--trust-code"]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "s.npy"), open_pipeline(bundle, "onnxruntime").sample(2), atol=1e-4)


def test_pickled_weights_need_trust_code(weights, tmp_path, capsys):
    from safetensors.torch import load_file
    from edgegen.train.module_import import OwnModule, module_source
    pt = tmp_path / "w.pt"
    torch.save({"state_dict": load_file(str(weights))}, str(pt))
    out = tmp_path / "b"
    argv = ["import", "--module", f"{FILE}:TinyUNet", "--weights", str(pt), "--kwargs", json.dumps(KWARGS),
            "--scheduler", json.dumps(SCHEDULER), "--shape", "1,8,8", "--num-classes", "3", "--format", "onnx",
            "--out", str(out), "--quiet"]
    assert main(argv) == 2 and not out.exists()
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "not a safetensors file" in err and "--trust-code" in err
    src = module_source(OwnModule(str(FILE), "TinyUNet", KWARGS), SCHEDULER, (1, 8, 8), pt, 3, trust_code=True)
    got = src.modules["denoiser"].net.state_dict()
    for k, v in load_file(str(weights)).items():
        assert torch.equal(got[k], v), k


# --- ONNX external data (forced on this bundle) ------------------------------------------------------

def test_external_data_is_a_sha256_checked_companion(bundle):
    entry = json.loads((bundle / "manifest.json").read_text())["roles"]["denoiser"]["files"]["onnx"]["fp32"]
    assert [c["path"] for c in entry["companions"]] == ["onnx/denoiser.onnx.data"]
    data = bundle / "onnx/denoiser.onnx.data"
    assert entry["companions"][0]["sha256"] == sha256_file(data)
    # the weights really are outside the model file (the torch safetensors holds the same tensors)
    assert data.stat().st_size > 0.8 * (bundle / "torch/denoiser.safetensors").stat().st_size
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(bundle / "onnx/denoiser.onnx"), load_external_data=False)
    assert any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)


def test_changed_external_data_is_refused(bundle, tmp_path):
    import shutil
    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    data = copy / "onnx/denoiser.onnx.data"
    raw = bytearray(data.read_bytes())
    raw[100] ^= 0xFF
    data.write_bytes(bytes(raw))
    with pytest.raises(EdgegenError, match="sha256 mismatch.*denoiser.onnx.data"):
        open_manifest(copy)
    data.unlink()
    with pytest.raises(EdgegenError, match="denoiser.onnx.data"):
        open_manifest(copy)


def _edit(src: Path, dst: Path, old: str, new: str) -> Path:
    dst.write_text(src.read_text().replace(old, new))
    return dst


@pytest.mark.parametrize("case", ["no file", "no class", "bad ref", "syntax", "wrong shape weights", "missing weight",
                                  "bad kwargs", "forward fails", "output shape", "scheduler option", "scheduler class",
                                  "no shape", "flag without module", "module and path", "null label without classes"])
def test_refusals_are_one_line_and_write_nothing(case, weights, tmp_path, capsys):
    from safetensors.torch import load_file, save_file
    file, w, kw = str(FILE), str(weights), dict(KWARGS)
    extra, sched, shape, ref = [], "DDIMScheduler", "1,8,8", None
    if case == "no file":
        file = str(tmp_path / "nope.py")
    elif case == "no class":
        ref = f"{FILE}:Nope"
    elif case == "bad ref":
        ref = str(FILE)
    elif case == "syntax":
        file = str(_edit(FILE, tmp_path / "m.py", "class TinyUNet(nn.Module):", "class TinyUNet(nn.Module)"))
    elif case == "wrong shape weights":
        kw["width"] = 16
    elif case == "missing weight":
        state = load_file(w)
        state.pop("inc.weight")
        save_file(state, str(tmp_path / "w.safetensors"))
        w = str(tmp_path / "w.safetensors")
    elif case == "bad kwargs":
        kw["depth"] = 3
    elif case == "forward fails":
        shape = "2,8,8"
    elif case == "output shape":
        file = str(_edit(FILE, tmp_path / "m.py", "return self.out(h)", "return self.out(h)[:, :, :4]"))
    elif case == "scheduler option":
        sched = json.dumps({"_class_name": "DDIMScheduler", "thresholding": True})
    elif case == "scheduler class":
        sched = "KarrasVeScheduler"
    elif case == "no shape":
        shape = None
    elif case == "null label without classes":
        extra = ["--null-label"]
    out = tmp_path / "bundle"
    argv = ["import", "--module", ref or f"{file}:TinyUNet", "--weights", w, "--kwargs", json.dumps(kw),
            "--scheduler", sched, "--num-classes", "0" if case == "null label without classes" else "3",
            "--format", "onnx", "--out", str(out), "--quiet"] + extra + (["--shape", shape] if shape else [])
    if case == "flag without module":
        argv = ["import", str(tmp_path), "--weights", w, "--out", str(out)]
    elif case == "module and path":
        argv = argv[:1] + [str(tmp_path)] + argv[1:]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgegen: error:") and "\n" not in err, err
    assert not out.exists()
    expected = {"no file": "does not exist", "no class": "no torch.nn.Module class 'Nope' (its classes: Block, TinyUNet)",
                "bad ref": "FILE.py:CLASS", "syntax": "SyntaxError", "wrong shape weights": "another shape",
                "missing weight": "1 missing (e.g. inc.weight)", "bad kwargs": "unexpected keyword",
                "forward fails": "forward(x (2, 2, 8, 8)", "output shape": "shaped like x",
                "scheduler option": "thresholding", "scheduler class": "KarrasVeScheduler", "no shape": "--shape",
                "flag without module": "--weights needs --module", "module and path": "not both",
                "null label without classes": "null label needs num_classes"}[case]
    assert expected in err, err
