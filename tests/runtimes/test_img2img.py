"""Image-to-image and inpainting as plan features (plans.edit_plan, the blend op): the plan math with
an oracle denoiser, then the tiny pixel DDPM and tiny LDM bundles end to end, and the bad inputs."""
from __future__ import annotations

import numpy as np
import pytest

from edgegen.errors import EdgegenError
from edgegen.runtimes.interpreter import run_plan
from edgegen.runtimes.plan_ops import apply_op
from edgegen.runtimes.plans import Plan, edit_plan, validate
from edgegen.runtimes.samplers import compile_plan
from edgegen.runtimes.schedules import alpha_bar

GEN = {"process": "ddpm", "schedule": {"kind": "linear", "T": 1000}, "defaults": {"sampler": "ddim", "steps": 20}}
SHAPE = (1, 8, 8)


def oracle(target: np.ndarray):
    """A denoiser that knows the clean image: eps = (x_t - sqrt(ab_t) x0) / sqrt(1 - ab_t)."""
    ab = alpha_bar("linear", 1000).astype(np.float64)

    def net(x, t, y):
        a = ab[int(round(float(t[0])))]
        return ((x - np.sqrt(a) * target[: len(x)]) / np.sqrt(1 - a)).astype(np.float32)
    return net


def images(n=3, seed=0):
    return np.random.default_rng(seed).uniform(-0.9, 0.9, (n, *SHAPE)).astype(np.float32)


@pytest.mark.parametrize("strength", [0.05, 0.3, 1.0])
def test_img2img_starts_part_way_and_an_oracle_returns_the_image(strength):
    plan = edit_plan(compile_plan(GEN), GEN, strength)
    assert len(plan.steps) == max(1, round(20 * strength)) and plan.inputs == ["x_init"]
    assert plan.init[0]["terms"][0][0] == "x_init" and "noise" in plan.init[0]  # one Philox draw
    assert plan.key.endswith(f"-strength{strength:g}")
    x = images()
    out = run_plan(Plan.from_json(plan.to_json()), oracle(x), SHAPE, np.zeros(3, np.int64), 7,
                   inputs={"x_init": x})
    np.testing.assert_allclose(out, x, atol=1e-4)


def test_inpainting_keeps_the_unmasked_pixels_exactly_and_generates_the_rest():
    plan = edit_plan(compile_plan(GEN), GEN, None, inpaint=True)
    assert plan.steps[-1]["ops"][-1] == {"op": "blend", "dst": "x", "a": "x", "b": "x_known", "mask": "mask"}
    known, wanted = images(seed=1), images(seed=2)
    mask = np.zeros((3, *SHAPE), np.float32)
    mask[..., 4:] = 1.0  # generate the right half
    out = run_plan(plan, oracle(wanted), SHAPE, np.zeros(3, np.int64), 3, inputs={"x_init": known, "mask": mask})
    assert np.array_equal(out[..., :4], known[..., :4])  # bit-exact, not just close
    np.testing.assert_allclose(out[..., 4:], wanted[..., 4:], atol=1e-3)


def test_blend_op_and_plan_validation():
    regs = {"x": np.full(4, 2.0, np.float32), "k": np.full(4, 5.0, np.float32),
            "m": np.array([1, 0, 1, 0], np.float32)}
    apply_op({"op": "blend", "dst": "x", "a": "x", "b": "k", "mask": "m"}, regs, None)
    assert regs["x"].tolist() == [2.0, 5.0, 2.0, 5.0]
    bad = Plan("ddim", {"steps": 1}, ["x"], [], [{"t": 1.0, "src": "x", "dst": "x", "ops": [
        {"op": "blend", "dst": "x", "a": "x", "b": "nope", "mask": "x"}]}], "x")
    with pytest.raises(EdgegenError, match="blend"):
        validate(bad)
    with pytest.raises(EdgegenError, match="inputs"):
        validate(Plan("ddim", {"steps": 0}, ["x"], [], [], "x", inputs=["x_init"]))
    with pytest.raises(EdgegenError, match="needs input register"):
        run_plan(edit_plan(compile_plan(GEN), GEN, 0.5), oracle(images()), SHAPE, np.zeros(3, np.int64), 0)


@pytest.mark.parametrize("strength, msg", [(0.0, r"\(0, 1\]"), (1.5, r"\(0, 1\]"), (0.01, "keeps none")])
def test_strength_outside_its_range_is_one_line(strength, msg):
    with pytest.raises(EdgegenError, match=msg):
        edit_plan(compile_plan(GEN), GEN, strength)


def test_non_ddpm_processes_are_refused():
    with pytest.raises(EdgegenError, match="DDPM-process"):
        edit_plan(compile_plan({"process": "gan", "latent_dim": 4}, "gan"), {"process": "gan"}, 0.5)


def test_plan_specs_with_edits_store_exactly_edit_plans_output():
    from edgegen.export.bundle import parse_plan_specs
    from edgegen.runtimes.stages import PlanGenerator
    specs = parse_plan_specs("ddim-20@strength0.6,ddim-20@inpaint,ddim-20@strength0.3@inpaint,ddim-20")
    assert specs[0] == {"sampler": "ddim", "steps": 20, "strength": 0.6}
    stored = PlanGenerator.bundle_plans(dict(GEN, bundle_plans=specs))
    assert list(stored) == ["ddim-20-strength0.6", "ddim-20-inpaint", "ddim-20-strength0.3-inpaint", "ddim-20"]
    base = compile_plan(GEN, "ddim", 20)
    assert stored["ddim-20-strength0.6"] == edit_plan(base, GEN, 0.6).to_json()
    assert stored["ddim-20-strength0.3-inpaint"] == edit_plan(base, GEN, 0.3, inpaint=True).to_json()
    assert Plan.from_json(stored["ddim-20-inpaint"]).inputs == ["x_init", "mask"]


@pytest.mark.parametrize("text, msg", [("ddim-50@strength0", r"\(0, 1\]"), ("ddim-50@strength1.5", r"\(0, 1\]"),
                                       ("ddim-50@strengthx", r"\(0, 1\]"), ("ddim-50@blur", "unknown edit '@blur'")])
def test_bad_edit_plan_specs_are_one_line(text, msg):
    from edgegen.export.bundle import parse_plan_specs
    with pytest.raises(EdgegenError, match=msg):
        parse_plan_specs(text)


# -- whole pipelines ----------------------------------------------------------------------------
def _mask(shape, right=True):
    m = np.zeros(shape[1:], np.float32)
    m[:, shape[2] // 2:] = 1.0
    return m


@pytest.fixture(scope="module")
def bundles(tiny_bundle, family_bundle):
    return {"ddpm": tiny_bundle, "ldm": family_bundle("ldm")}


@pytest.mark.parametrize("family", ["ddpm", "ldm"])
def test_img2img_and_inpainting_end_to_end(bundles, family):
    from edgegen.runtimes.api import open_pipeline
    from edgegen.train.data import load_images
    kw = {"prompt": "a handwritten seven"} if family == "ldm" else {"labels": 7}
    pipes = {b: open_pipeline(bundles[family], b) for b in ("onnxruntime", "openvino")}
    stored = pipes["onnxruntime"].manifest.data["plans"]  # the edits native and web runtimes run
    base = "ddim-50-noclip" if family == "ldm" else "ddim-50"  # latents are not clipped
    assert {f"{base}-strength0.3", f"{base}-strength0.6", f"{base}-strength0.8", f"{base}-inpaint"} <= set(stored)
    image = load_images("digits", "test", 16).images[0]
    a = pipes["onnxruntime"].sample(2, seed=4, init_image=image, strength=0.5, **kw)
    b = pipes["openvino"].sample(2, seed=4, init_image=image, strength=0.5, **kw)
    np.testing.assert_allclose(a, b, atol=1e-4)  # the same Philox noise on every runtime
    assert np.array_equal(a, pipes["onnxruntime"].sample(2, seed=4, init_image=image, strength=0.5, **kw))
    mask = _mask(image.shape)
    out = pipes["onnxruntime"].sample(2, seed=4, init_image=image, mask=mask, **kw)
    keep = np.broadcast_to(mask == 0, out.shape)
    assert np.array_equal(out[keep], np.broadcast_to(image, out.shape)[keep])  # unmasked pixels: the input
    assert not np.allclose(out[~keep], np.broadcast_to(image, out.shape)[~keep])


@pytest.mark.parametrize("kw, msg", [
    ({"init_image": np.zeros((1, 8, 8), np.float32)}, "takes 1x16x16"),
    ({"init_image": np.zeros((3, 16, 16), np.float32)}, "takes 1x16x16"),
    ({"init_image": np.full((1, 16, 16), 3.0, np.float32)}, "data range"),
    ({"init_image": np.zeros((1, 16, 16), np.float32), "strength": 0.0}, r"\(0, 1\]"),
    ({"init_image": np.zeros((1, 16, 16), np.float32), "mask": np.full((16, 16), 0.5)}, "binary"),
    ({"init_image": np.zeros((1, 16, 16), np.float32), "mask": np.ones((8, 8))}, "must be 16x16"),
    ({"mask": np.ones((16, 16))}, "need --init-image"),
])
def test_bad_edit_inputs_are_one_line(bundles, kw, msg):
    from edgegen.runtimes.api import open_pipeline
    with pytest.raises(EdgegenError, match=msg):
        open_pipeline(bundles["ddpm"], "onnxruntime").sample(1, labels=1, **kw)


def test_cli_reads_pngs_and_refuses_bad_ones(bundles, tmp_path, capsys):
    from PIL import Image

    from edgegen.cli import main
    from edgegen.images import read_image, save_image
    from edgegen.train.data import load_images
    image = load_images("digits", "test", 16).images[3]
    save_image(tmp_path / "in.png", image)
    Image.fromarray(np.where(_mask(image.shape) > 0, 255, 0).astype(np.uint8)).save(tmp_path / "m.png")
    Image.fromarray(np.full((16, 16), 7, np.uint8)).save(tmp_path / "grey.png")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "rgb.png")
    out = tmp_path / "out.png"
    base = ["sample", str(bundles["ldm"]), "--prompt", "a handwritten three", "--n", "2", "--quiet",
            "--out", str(out), "--init-image", str(tmp_path / "in.png")]
    assert main(base + ["--mask", str(tmp_path / "m.png")]) == 0
    got, want = np.load(out.with_suffix(".npy")), read_image(tmp_path / "in.png", (1, 16, 16))
    assert np.array_equal(got[..., :8], np.broadcast_to(want[..., :8], got[..., :8].shape))
    capsys.readouterr()
    for args, msg in ((base + ["--mask", str(tmp_path / "grey.png")], "not binary"),
                      (base + ["--strength", "2"], "(0, 1]"), (base[:-1] + [str(tmp_path / "rgb.png")], "3 channel")):
        assert main(args) == 2  # the CLI's exit code for bad input, one line on stderr
        err = capsys.readouterr().err.strip()
        assert msg in err and len(err.splitlines()) == 1
