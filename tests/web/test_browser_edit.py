"""Image-to-image and inpainting in the web page (Debian's headless Chromium, Playwright).

The page runs the bundle's STORED edit plans (plans.edit_plan: ``<plan>-strength<s>``,
``<plan>-inpaint``) with their input registers (x_init, mask) and the blend op; for latent models
it encodes the init image with the vae_encoder role (times the stage's scale), max-pools the mask
to the latent grid and pastes the input's unmasked pixels back after decoding. The samples must
equal Python's onnxruntime pipeline for the same seed, plan, image and mask within 1e-4, and the
unmasked pixels must equal the input exactly. The init image goes through the page's file input
(a PNG decoded by the browser's canvas), like a user's.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from edgegen.images import read_image, read_mask, save_image
from edgegen.runtimes.plans import edit_plan as compile_edit


def init_png(bundle: Path, path: Path, prompt=None) -> Path:
    """A real image of the model's size (one of its own samples), as the PNG a user would pick."""
    from edgegen.runtimes.pipeline import open_pipeline
    pipe = open_pipeline(bundle, "onnxruntime")
    x = pipe.sample(1, seed=101, prompt=prompt)[0]
    save_image(path, x, pipe.manifest.data["data"].get("range", [-1.0, 1.0]))
    return path


def right_half(shape) -> np.ndarray:
    m = np.zeros(shape[1:], np.float32)
    m[:, shape[2] // 2:] = 1.0
    return m


def python_edit(bundle: Path, key: str, n: int, seed: int, image, mask=None, prompt=None):
    """Python's onnxruntime Pipeline on the stored plan ``key``: the edit it compiles (plans.edit_plan
    on its base plan, at the stored plan's strength; inpainting without one runs every step) must
    be the stored plan itself."""
    from edgegen.runtimes.pipeline import open_pipeline
    pipe = open_pipeline(bundle, "onnxruntime")
    stored = pipe.manifest.data["plans"][key]
    p = stored["params"]
    opts = {k: v for k, v in p.items() if k in ("eta", "clip_x0", "variance")}
    base = pipe.plan(stored["sampler"], p["steps"], **opts)
    assert compile_edit(base, pipe.sampling, p.get("strength"), inpaint=mask is not None).to_json() == stored
    return pipe.sample(n, seed=seed, prompt=prompt, sampler=stored["sampler"], steps=p["steps"], init_image=image,
                       mask=mask, strength=p.get("strength"), **opts)


def page_edit(page, png: Path, n: int, seed: int, base: str, strength: str, mask: str = "none",
              mask_file: Path | None = None, prompt=None) -> dict:
    """Pick the init image (and mask) through the page's controls, then generate."""
    page.fill_form(n, seed, base, prompt=prompt)
    page.page.set_input_files("#init-image", str(png))
    page.page.wait_for_function("window.edgegen.initImage !== null || window.edgegen.state === 'error'")
    assert page.state in ("ready", "done"), page.js("window.edgegen.error")
    page.page.select_option("#mask", mask)
    if mask_file is not None:
        page.page.set_input_files("#mask-file", str(mask_file))
        page.page.wait_for_function("window.edgegen.maskFile !== null || window.edgegen.state === 'error'")
    page.page.select_option("#strength", strength)
    state, error = page.click_generate()
    assert state == "done", error
    return {"samples": np.array(page.js("Array.from(window.edgegen.last.samples)"), dtype=np.float32),
            "plan": page.js("window.edgegen.last.plan"), "status": page.page.text_content("#status")}


def check(got: dict, ref: np.ndarray, key: str) -> np.ndarray:
    assert got["plan"] == key
    out = got["samples"].reshape(ref.shape)
    err = float(np.abs(out - ref).max())
    print(f"{key}: page vs Python onnxruntime max abs difference {err:.3g}")
    assert err <= 1e-4, f"page vs Python onnxruntime on {key}: max abs difference {err:.3g}"
    assert float(ref.std()) > 0.05
    return out


def test_tiny_ddpm_img2img_and_inpainting_equal_python(open_page, serve, tiny_bundle, tmp_path):
    png = init_png(tiny_bundle, tmp_path / "digit.png")
    shape = tuple(Image.open(png).size)
    image = read_image(png, (1, shape[1], shape[0]))
    page = open_page(serve(tiny_bundle))
    assert page.js("window.edgegen.pipeline.takesImage")
    # the steps list offers the plans that start from noise; the strengths are the stored ones
    assert "ddim-50" in page.js("window.edgegen.pipeline.basePlans")
    page.page.select_option("#plan", "ddim-50")
    page.page.set_input_files("#init-image", str(png))
    page.page.wait_for_function("window.edgegen.initImage !== null")
    offered = page.page.eval_on_selector_all("#strength option", "os => os.map((o) => o.value)")
    assert offered == ["0.3", "0.6", "0.8", "all"], offered

    got = page_edit(page, png, 3, 5, "ddim-50", "0.6")
    ref = python_edit(tiny_bundle, "ddim-50-strength0.6", 3, 5, image)
    out = check(got, ref, "ddim-50-strength0.6")
    assert "strength 0.6" in got["status"]
    assert np.abs(out - image).max() > 0.05  # it edited the image

    got = page_edit(page, png, 3, 9, "ddim-50", "all", mask="right")
    ref = python_edit(tiny_bundle, "ddim-50-inpaint", 3, 9, image, right_half(image.shape))
    out = check(got, ref, "ddim-50-inpaint")
    w = image.shape[2] // 2
    assert np.array_equal(out[..., :w], np.broadcast_to(image[..., :w], out[..., :w].shape))  # bit-exact
    assert np.abs(out[..., w:] - image[..., w:]).max() > 0.05


def test_tiny_ldm_img2img_and_inpainting_equal_python(open_page, serve, family_bundle, tmp_path):
    bundle = family_bundle("ldm")
    prompt = "a handwritten seven"
    png = init_png(bundle, tmp_path / "seven.png", prompt=prompt)
    w, h = Image.open(png).size
    image = read_image(png, (1, h, w))
    page = open_page(serve(bundle))
    base = page.js("window.edgegen.pipeline.defaultPlan")
    assert page.js("window.edgegen.pipeline.manifest.pipeline.encoder.role") in page.js(
        "Object.keys(window.edgegen.pipeline.roles)")

    key = f"{base}-strength0.8"
    got = page_edit(page, png, 2, 4, base, "0.8", prompt=prompt)
    ref = python_edit(bundle, key, 2, 4, image, prompt=prompt)
    check(got, ref, key)

    # inpainting with a mask file (left half generated): latent mask max-pooled, pixels pasted back
    mask = np.zeros((h, w), np.uint8)
    mask[:, : w // 2] = 255
    Image.fromarray(mask, mode="L").save(tmp_path / "mask.png")
    m = read_mask(tmp_path / "mask.png", (h, w))
    got = page_edit(page, png, 2, 6, base, "all", mask="file", mask_file=tmp_path / "mask.png", prompt=prompt)
    ref = python_edit(bundle, f"{base}-inpaint", 2, 6, image, m, prompt=prompt)
    out = check(got, ref, f"{base}-inpaint")
    assert np.array_equal(out[..., w // 2:], np.broadcast_to(image[..., w // 2:], out[..., w // 2:].shape))


def test_bad_init_image_and_mask_are_messages(open_page, serve, tiny_bundle, tmp_path):
    """A wrong-size image, a colour image, a mask that is not black and white, not an image at all:
    one line in the page each, and the page still generates afterwards."""
    page = open_page(serve(tiny_bundle))
    w, h = page.js("window.edgegen.pipeline.sampleShape.slice(1).reverse()")
    Image.fromarray(np.zeros((h + 4, w + 4), np.uint8), mode="L").save(tmp_path / "big.png")
    Image.fromarray(np.zeros((h, w, 3), np.uint8) + np.array([200, 0, 0], np.uint8), mode="RGB").save(tmp_path / "red.png")
    (tmp_path / "notes.png").write_text("not an image")
    for name, want in (("big.png", f"the init image big.png is {w + 4}x{h + 4}, this model takes {w}x{h} images"),
                       ("red.png", "the init image red.png has colour (RGB), this model takes 1 channel(s) (greyscale)"),
                       ("notes.png", "cannot read the init image notes.png")):
        page.page.set_input_files("#init-image", str(tmp_path / name))
        page.page.wait_for_function("(n) => (window.edgegen.error || '').includes(n)", arg=name)
        msg = page.page.text_content("#error")
        assert page.state == "error" and msg.startswith(want) and "\n" not in msg, msg
        assert page.js("window.edgegen.initImage") is None and not page.page.is_disabled("#generate")
        assert page.page.is_disabled("#strength")
    # a grey mask is refused the same way
    grey = np.full((h, w), 128, np.uint8)
    Image.fromarray(grey, mode="L").save(tmp_path / "grey.png")
    Image.fromarray(grey, mode="L").save(tmp_path / "ok.png")
    page.page.set_input_files("#init-image", str(tmp_path / "ok.png"))
    page.page.wait_for_function("window.edgegen.initImage !== null")
    page.page.select_option("#mask", "file")
    page.page.set_input_files("#mask-file", str(tmp_path / "grey.png"))
    page.page.wait_for_function("window.edgegen.state === 'error'")
    assert "the mask grey.png is not binary" in page.page.text_content("#error")
    # edits the bundle does not store: one line naming what it stores and how to store more
    page.page.select_option("#mask", "right")
    page.page.select_option("#strength", "0.3")
    page.click_generate()
    msg = page.page.text_content("#error")
    assert "stores no inpainting plan at strength 0.3 for 'ddim-50'" in msg and "ddim-50-inpaint" in msg, msg
    assert "--plans ddim-50@strength0.3@inpaint" in msg, msg
    page.page.select_option("#mask", "none")
    page.page.select_option("#strength", "all")
    page.click_generate()
    assert "needs a strength" in page.page.text_content("#error")
    # the page still generates: the init image at a stored strength, no mask
    page.page.select_option("#strength", "0.3")
    state, error = page.click_generate()
    assert state == "done", error
    assert page.js("window.edgegen.last.plan").endswith("-strength0.3")
