"""ExecuTorch (--format executorch) on the families beyond the DDPM-like plan families: the latent
text-to-image model (four roles), the score SDE, and the token families (VQ-VAE prior and DALL-E
step networks with a KV cache, their decoders). Every role either lowers to an XNNPACK .pte and
passes the parity gate (single call 1e-4, the family's gate trajectory or whole-pipeline gate
1e-3), or is refused with its reason recorded in the manifest. Tiny presets; the Core ML and
Vulkan programs are skipped through the recipe (``executorch_delegates=()``), which is recorded.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from edgegen.errors import EdgegenError
from edgegen.manifest import read_manifest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("executorch") is None,
    reason="the Python package 'executorch' is not installed (pip install 'edgegen[executorch]')")

FAMILIES = ("ldm", "sde", "vqvae", "dalle")


@pytest.fixture(scope="module")
def et_bundles(tmp_path_factory):
    """family -> (bundle, verify.json): each tiny preset trained and exported to ONNX + ExecuTorch once."""
    from edgegen.export.recipe import ExportRecipe
    from edgegen.train.families import get_preset
    from edgegen.train.runs import export_run, train_run
    made = {}

    def get(family: str):
        if family not in made:
            cfg = get_preset(family, "tiny")
            run = train_run(family, cfg, tmp_path_factory.mktemp("runs") / f"{family}-tiny", progress=False)
            out = tmp_path_factory.mktemp("bundles") / f"{family}-et"
            verify = export_run(run, ["onnx", "executorch"], out, progress=False,
                                recipe=ExportRecipe(executorch_delegates=()))
            made[family] = (out, verify)
        return made[family]
    return get


@pytest.mark.parametrize("family", FAMILIES)
def test_every_role_lowers_and_passes_the_gate_or_is_refused_with_its_reason(et_bundles, family):
    out, verify = et_bundles(family)
    m = read_manifest(out, verify=True)
    section = m.data["export"]["executorch"]
    refused = section.get("refused", {})
    lowered = []
    for role in m.data["roles"]:
        if role in refused:
            reason = refused[role]
            assert reason.strip() and "\n" not in reason and "cannot lower" in reason, reason
            assert "executorch" not in m.formats(role)
            continue
        entry = m.formats(role)["executorch"]["fp32"]
        assert entry["partitioner"] == "xnnpack" and entry["requires"]["delegates"] == ["XnnpackBackend"]
        r = verify["results"][role]["executorch"]["fp32"]
        assert r["passed"] and r["single_call_max_abs"] <= 1e-4, r
        # the gate trajectory (plans: the family's gate sampler, the LDM's whole prompt -> image
        # pipeline; token steps: prefill + decode steps, and greedy tokens equal to PyTorch's)
        assert r.get("trajectory_max_abs", 0.0) <= 1e-3, r
        assert r.get("greedy_matches_torch_no_cache", True), r
        lowered.append(role)
    assert lowered, f"no {family} role lowered: {refused}"
    # the recipe skipped the Core ML / Vulkan programs, and says so
    for delegate in ("coreml", "vulkan"):
        d = section["delegates"][delegate]
        assert d["written"] is False and "not asked for" in d["reason"]
    assert m.data["export"]["recipe"]["executorch_delegates"] == []


def test_ldm_prompt_to_image_on_executorch_equals_onnxruntime(et_bundles):
    """edgegen sample --backend executorch on the tiny LDM: text encoder, denoiser with CFG, VAE
    decoder (and the VAE encoder for image-to-image and inpainting) all as .pte programs."""
    from edgegen.runtimes.pipeline import open_pipeline
    out, verify = et_bundles("ldm")
    m = read_manifest(out)
    assert not m.data["export"]["executorch"].get("refused")  # all four roles lowered
    ort, et = open_pipeline(out, "onnxruntime"), open_pipeline(out, "executorch")
    kw = {"seed": 3, "prompt": "a handwritten seven"}
    a, b = ort.sample(3, **kw), et.sample(3, **kw)
    assert float(np.abs(a - b).max()) <= 1e-4 and float(a.std()) > 0.05
    image = np.clip(a[0], -1.0, 1.0)  # a decoded sample may overshoot the data range an init image must keep
    mask = np.zeros(image.shape[1:], np.float32)
    mask[:, image.shape[2] // 2:] = 1.0
    for edit in ({"init_image": image, "strength": 0.6}, {"init_image": image, "mask": mask}):
        a, b = ort.sample(2, **kw, **edit), et.sample(2, **kw, **edit)
        assert float(np.abs(a - b).max()) <= 1e-4, edit.keys()
    # the whole-pipeline gate (prompt -> image against torch) ran on the .pte programs
    gate = verify["results"]["denoiser"]["executorch"]["fp32"]
    assert gate["trajectory_max_abs"] <= 1e-3


@pytest.mark.parametrize("family", ("sde", "vqvae", "dalle"))
def test_samples_on_executorch_equal_onnxruntime(et_bundles, family):
    from edgegen.runtimes.pipeline import open_pipeline
    out, _ = et_bundles(family)
    if read_manifest(out).data["export"]["executorch"].get("refused"):
        with pytest.raises(EdgegenError, match="the export refused it"):
            open_pipeline(out, "executorch").sample(2, seed=5)
        return
    kw = {"seed": 5, "prompt": "a handwritten seven"} if family == "dalle" else {"seed": 5}
    a = open_pipeline(out, "onnxruntime").sample(3, **kw)
    b = open_pipeline(out, "executorch").sample(3, **kw)
    assert float(np.abs(a - b).max()) <= 1e-4


def test_the_delegates_option_is_checked():
    from edgegen.export.recipe import ExportRecipe, parse_delegates
    assert parse_delegates("none") == () and parse_delegates("vulkan, coreml") == ("vulkan", "coreml")
    assert ExportRecipe().executorch_delegates == ("coreml", "vulkan")
    with pytest.raises(EdgegenError, match="unknown ExecuTorch delegate 'qnn'"):
        ExportRecipe(executorch_delegates=parse_delegates("qnn"))
