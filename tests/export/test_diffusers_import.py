"""edgegen import: tiny diffusers pipelines built here (hand-written configs, random weights,
save_pretrained; nothing downloaded) -> bundles that pass the parity gate and sample what the
diffusers pipeline itself returns from the same initial latents and noise.

diffusers' randn_tensor (in the pipeline and scheduler modules) is replaced by edgegen's Philox
draws in plan order: draw 0 is the initial latents (init_noise_sigma is 1 for DDPM and DDIM),
draws 1, 2, ... the noise of the ancestral steps.
"""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from edgegen.cli import main  # noqa: E402
from edgegen.errors import EdgegenError  # noqa: E402
from edgegen.runtimes import rng  # noqa: E402
from edgegen.runtimes.api import open_pipeline  # noqa: E402
from edgegen.train.diffusers_import import import_pipeline, import_source  # noqa: E402

SEED, N, T, STEPS = 5, 3, 50, 8
PIPELINE_ABS = 1e-3  # the whole pipeline against diffusers' (acceptance)


def tiny_unet(**kw):
    cfg = dict(sample_size=8, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16),
               down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
               norm_num_groups=4, attention_head_dim=4)
    cfg.update(kw)
    torch.manual_seed(0)
    return diffusers.UNet2DModel(**cfg)


def save(pipe, path):
    pipe.save_pretrained(str(path))
    return path


@pytest.fixture(scope="module")
def ddpm_folder(tmp_path_factory):
    return save(diffusers.DDPMPipeline(tiny_unet(), diffusers.DDPMScheduler(num_train_timesteps=T)),
                tmp_path_factory.mktemp("ddpm_pipe"))


@pytest.fixture(scope="module")
def ddim_folder(tmp_path_factory):  # class-conditional, v-prediction, trailing spacing
    sched = diffusers.DDIMScheduler(num_train_timesteps=T, prediction_type="v_prediction", timestep_spacing="trailing",
                                    beta_schedule="scaled_linear", beta_start=0.001, beta_end=0.02)
    return save(diffusers.DDIMPipeline(tiny_unet(num_class_embeds=4), sched), tmp_path_factory.mktemp("ddim_pipe"))


@pytest.fixture(scope="module")
def ddpm_bundle(ddpm_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("b") / "ddpm"
    assert main(["import", str(ddpm_folder), "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def ddim_bundle(ddim_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("b") / "ddim"
    verify = import_pipeline(ddim_folder, out, progress=False)
    assert verify["passed"]
    return out


class PhiloxNoise:
    """randn_tensor replaced by edgegen's Philox draws 0, 1, 2, ... (the plan's order)."""

    def __init__(self, seed):
        self.seed, self.draw = seed, 0

    def __call__(self, shape, generator=None, device=None, dtype=None, layout=None):
        z = rng.gaussian(self.seed, tuple(shape), draw=self.draw)
        self.draw += 1
        return torch.from_numpy(z).to(dtype or torch.float32)


def diffusers_output(pipe, monkeypatch, labels=None, **call):
    """The pipeline's own output (NHWC in [0, 1]) with Philox noise."""
    noise = PhiloxNoise(SEED)
    for mod in ("diffusers.pipelines.ddpm.pipeline_ddpm", "diffusers.pipelines.ddim.pipeline_ddim",
                "diffusers.schedulers.scheduling_ddpm", "diffusers.schedulers.scheduling_ddim"):
        monkeypatch.setattr(f"{mod}.randn_tensor", noise)
    if labels is not None:  # the pixel pipelines pass no class labels: give the UNet ours
        forward = pipe.unet.forward
        monkeypatch.setattr(pipe.unet, "forward", lambda x, t, **kw: forward(x, t, class_labels=torch.as_tensor(labels),
                                                                             **kw))
    with torch.no_grad():
        return pipe(batch_size=N, output_type="np", **call).images


def as_image(x):
    """edgegen's samples (data range [-1, 1], NCHW) as diffusers' pixel pipelines return them."""
    return np.clip(x / 2 + 0.5, 0, 1).transpose(0, 2, 3, 1)


def check_close(ours, theirs):
    err = float(np.max(np.abs(ours - theirs)))
    inside = float(np.mean((theirs > 0.01) & (theirs < 0.99)))
    assert inside > 0.3, f"too few unsaturated pixels ({inside:.0%}) for a meaningful comparison"
    assert err < PIPELINE_ABS, err
    return err


def test_import_passes_the_gate(ddpm_bundle):
    verify = json.loads((ddpm_bundle / "verify.json").read_text())
    assert verify["passed"]
    assert set(verify["results"]["denoiser"]) == {"onnx", "openvino"}
    m = json.loads((ddpm_bundle / "manifest.json").read_text())
    gen = m["pipeline"]["generator"]
    assert m["family"] == "diffusers" and gen["process"] == "diffusers"
    assert gen["defaults"] == {"sampler": "ddpm", "steps": T}  # DDPMPipeline: 1000 steps, at most T
    assert gen["scheduler"]["_class_name"] == "DDPMScheduler" and "dpmpp_2m" in gen["samplers"]


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_ddpm_pipeline_matches_diffusers(ddpm_folder, ddpm_bundle, backend, monkeypatch):
    theirs = diffusers_output(diffusers.DDPMPipeline.from_pretrained(str(ddpm_folder)), monkeypatch,
                              num_inference_steps=STEPS)
    ours = open_pipeline(ddpm_bundle, backend).sample(N, seed=SEED, steps=STEPS)
    check_close(as_image(ours), theirs)


def test_sample_cli_and_torch_backend(ddpm_folder, ddpm_bundle, tmp_path, monkeypatch):
    """`edgegen sample B --steps N` (onnxruntime) and --backend torch (rebuilt from the stored config)."""
    theirs = diffusers_output(diffusers.DDPMPipeline.from_pretrained(str(ddpm_folder)), monkeypatch,
                              num_inference_steps=STEPS)
    for backend in ("onnxruntime", "torch"):
        out = tmp_path / f"{backend}.png"
        assert main(["sample", str(ddpm_bundle), "--steps", str(STEPS), "--n", str(N), "--seed", str(SEED),
                     "--backend", backend, "--out", str(out), "--quiet"]) == 0
        check_close(as_image(np.load(out.with_suffix(".npy"))), theirs)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_ddim_class_conditional_matches_diffusers(ddim_folder, ddim_bundle, backend, eta, monkeypatch):
    labels = np.array([3, 0, 1])
    pipe = diffusers.DDIMPipeline.from_pretrained(str(ddim_folder))
    theirs = diffusers_output(pipe, monkeypatch, labels=labels, num_inference_steps=STEPS, eta=eta)
    ours = open_pipeline(ddim_bundle, backend).sample(N, seed=SEED, labels=labels, steps=STEPS, eta=eta)
    check_close(as_image(ours), theirs)


# -- refusals: one line, exit code 2, nothing written -----------------------------------------------
def edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def copy_folder(src, dst):
    import shutil
    shutil.copytree(src, dst)
    return dst


REFUSALS = {
    "not a folder": (lambda p: (p / "model_index.json").unlink(), "not a diffusers pipeline folder"),
    "pipeline class": (lambda p: edit_json(p / "model_index.json", _class_name="ScoreSdeVePipeline"),
                       "unsupported pipeline class 'ScoreSdeVePipeline' (supported: DDPMPipeline, DDIMPipeline)"),
    "scheduler class": (lambda p: edit_json(p / "scheduler/scheduler_config.json", _class_name="KarrasVeScheduler"),
                        "unsupported scheduler class 'KarrasVeScheduler'"),
    "scheduler option": (lambda p: edit_json(p / "scheduler/scheduler_config.json", thresholding=True),
                         "unsupported scheduler option thresholding=True"),
    "scheduler value": (lambda p: edit_json(p / "scheduler/scheduler_config.json", beta_schedule="sigmoid"),
                        "unsupported scheduler option beta_schedule='sigmoid'"),
    "unet option": (lambda p: edit_json(p / "unet/config.json", time_embedding_type="fourier"),
                    "unsupported UNet2DModel option time_embedding_type='fourier' (supported: 'positional')"),
    "unknown unet key": (lambda p: edit_json(p / "unet/config.json", future_option=1),
                         "unsupported UNet2DModel config option(s) future_option"),
    "unet class": (lambda p: edit_json(p / "unet/config.json", _class_name="UNet2DConditionModel"),
                   "unsupported unet class 'UNet2DConditionModel' (supported: UNet2DModel)"),
    "weights": (lambda p: edit_json(p / "unet/config.json", block_out_channels=[8, 24]),
                "component unet: weights do not match its config: "),
    "no weights": (lambda p: (p / "unet/diffusion_pytorch_model.safetensors").unlink(),
                   "component unet: no diffusion_pytorch_model.safetensors"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusals_one_line_exit_2_nothing_written(ddpm_folder, tmp_path, capsys, case):
    edit, message = REFUSALS[case]
    folder = copy_folder(ddpm_folder, tmp_path / "pipe")
    edit(folder)
    out = tmp_path / "bundle"
    assert main(["import", str(folder), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("edgegen: error: ") and message in err, err
    assert not out.exists()
    with pytest.raises(EdgegenError):
        import_source(folder)
