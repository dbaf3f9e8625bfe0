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
                       "unsupported pipeline class 'ScoreSdeVePipeline' (supported: DDPMPipeline, DDIMPipeline, "
                       "StableDiffusionPipeline)"),
    "scheduler class": (lambda p: edit_json(p / "scheduler/scheduler_config.json", _class_name="KarrasVeScheduler"),
                        "unsupported scheduler class 'KarrasVeScheduler'"),
    "scheduler option": (lambda p: edit_json(p / "scheduler/scheduler_config.json", thresholding=True),
                         "unsupported scheduler option thresholding=True"),
    "scheduler value": (lambda p: edit_json(p / "scheduler/scheduler_config.json", beta_schedule="sigmoid"),
                        "unsupported scheduler option beta_schedule='sigmoid'"),
    "pndm without --sampler": (lambda p: edit_json(p / "scheduler/scheduler_config.json", _class_name="PNDMScheduler"),
                               "scheduler class 'PNDMScheduler' has no edgegen sampler"),
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


def test_sampler_choice_for_a_scheduler_without_one(ddpm_folder, tmp_path):
    """PNDMScheduler (Stable Diffusion 1.x's) has no edgegen sampler: --sampler picks the default;
    the config still gives the betas, prediction type and spacing."""
    folder = copy_folder(ddpm_folder, tmp_path / "pipe")
    edit_json(folder / "scheduler/scheduler_config.json", _class_name="PNDMScheduler", timestep_spacing="leading")
    gen = import_source(folder, sampler="euler").data["pipeline"]["generator"]
    assert gen["defaults"] == {"sampler": "euler", "steps": T} and gen["scheduler"]["_class_name"] == "PNDMScheduler"
    with pytest.raises(EdgegenError, match="unknown sampler 'pndm' for this scheduler config"):
        import_source(folder, sampler="pndm")


# -- latent text-to-image (StableDiffusionPipeline layout) -------------------------------------------
transformers = pytest.importorskip("transformers")
PROMPT = "a photo of the cat"


def byte_alphabet() -> list[str]:
    """The 256 characters byte-level BPE (GPT-2, CLIP) writes bytes as: printable Latin-1 bytes are
    themselves, the others are moved to code points from 256 up, in byte order."""
    printable = set(range(ord("!"), ord("~") + 1)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    out, moved = [], 0
    for b in range(256):
        if b in printable:
            out.append(chr(b))
        else:
            out.append(chr(256 + moved))
            moved += 1
    return out


def tiny_clip_tokenizer(folder):
    """A CLIP BPE tokenizer with a hand-written vocab (bytes, bytes at word ends, a few merges)."""
    chars = byte_alphabet()
    merges = ["t h", "th e</w>", "o f</w>", "p h", "o t", "ph ot", "phot o</w>"]
    vocab = chars + [c + "</w>" for c in chars] + [m.replace(" ", "") for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir()
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return transformers.CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=12), \
        len(vocab)


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    """UNet2DConditionModel 8x8x4, AutoencoderKL (x2: 16x16 images), CLIP text encoder (L 12, D 16), DDIM."""
    root = tmp_path_factory.mktemp("sd")
    tok, vocab_size = tiny_clip_tokenizer(root / "tok")
    torch.manual_seed(0)
    d = 16
    text = transformers.CLIPTextModel(transformers.CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=d, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=12, bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1)).eval()
    unet = diffusers.UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=d, norm_num_groups=4, attention_head_dim=4)
    vae = diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, block_out_channels=(8, 16), latent_channels=4, norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1,
        sample_size=16)
    sched = diffusers.DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                    clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = diffusers.StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=sched,
                                             safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    return save(pipe, root / "pipe")


@pytest.fixture(scope="module")
def sd_bundle(sd_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("b") / "sd"
    assert import_pipeline(sd_folder, out, formats=("onnx",), progress=False)["passed"]
    return out


def test_sd_manifest(sd_bundle):
    m = json.loads((sd_bundle / "manifest.json").read_text())
    p = m["pipeline"]
    assert set(m["roles"]) == {"text_encoder", "denoiser", "vae_decoder", "vae_encoder"}
    assert m["roles"]["denoiser"]["meta"] == {"time_input": "t", "context_input": "context"}
    assert p["condition"]["tokenizer"] == {"file": "tokenizer.json", "text_length": 12}
    assert p["generator"]["latent_shape"] == [4, 8, 8] and m["data"]["shape"] == [3, 16, 16]
    assert p["generator"]["defaults"] == {"sampler": "ddim", "steps": 50, "guidance": 7.5}
    assert p["decoder"]["scale"] == p["encoder"]["scale"] == 0.18215


SD_SCHEDULERS = {"ddim": ("DDIMScheduler", "scheduling_ddim"),
                 "euler_ancestral": ("EulerAncestralDiscreteScheduler", "scheduling_euler_ancestral_discrete"),
                 "dpmpp_2m": ("DPMSolverMultistepScheduler", "scheduling_dpmsolver_multistep")}


@pytest.mark.parametrize("sampler", list(SD_SCHEDULERS))
def test_sd_pipeline_matches_diffusers(sd_folder, sd_bundle, sampler, monkeypatch):
    """StableDiffusionPipeline(prompt, latents=Philox draw 0) with guidance 7.5 against edgegen on
    onnxruntime; the scheduler switched with from_config as diffusers users do."""
    cls, module = SD_SCHEDULERS[sampler]
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(str(sd_folder), safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = getattr(diffusers, cls).from_config(pipe.scheduler.config)
    noise = PhiloxNoise(SEED)
    noise.draw = 1  # draw 0 is the latents (the pipeline scales them by init_noise_sigma)
    monkeypatch.setattr(f"diffusers.schedulers.{module}.randn_tensor", noise)
    latents = torch.from_numpy(rng.gaussian(SEED, (N, 4, 8, 8), draw=0))
    with torch.no_grad():
        theirs = pipe(PROMPT, num_inference_steps=STEPS, latents=latents, num_images_per_prompt=N,
                      output_type="np").images
    edge = open_pipeline(sd_bundle, "onnxruntime")
    check_close(as_image(edge.sample(N, seed=SEED, prompt=PROMPT, steps=STEPS, sampler=sampler)), theirs)
    other = as_image(edge.sample(N, seed=SEED, prompt="the photo", steps=STEPS, sampler=sampler))
    assert np.max(np.abs(other - theirs)) > 10 * PIPELINE_ABS  # the prompt matters at this tolerance


def test_sd_sample_cli(sd_bundle, tmp_path):
    out = tmp_path / "s.png"
    assert main(["sample", str(sd_bundle), "--prompt", PROMPT, "--steps", "3", "--n", "2", "--out", str(out),
                 "--quiet"]) == 0
    assert np.load(out.with_suffix(".npy")).shape == (2, 3, 16, 16)


def test_sd_legacy_weight_names(sd_folder, tmp_path):
    """Files from older savers load: VAE attention as query/key/value/proj_attn, CLIP weights under
    text_model. with its position_ids buffer (transformers 4, e.g. Stable Diffusion 1.5's files)."""
    from safetensors.torch import load_file, save_file
    folder = copy_folder(sd_folder, tmp_path / "pipe")
    vae_file, te_file = folder / "vae/diffusion_pytorch_model.safetensors", folder / "text_encoder/model.safetensors"
    vae = load_file(str(vae_file))
    legacy = {}
    for k, v in vae.items():
        for cur, old in ((".to_q.", ".query."), (".to_k.", ".key."), (".to_v.", ".value."),
                         (".to_out.0.", ".proj_attn.")):
            k = k.replace(cur, old)
        legacy[k] = v
    assert any(".query." in k for k in legacy)
    save_file(legacy, str(vae_file))
    te = {"text_model." + k: v for k, v in load_file(str(te_file)).items()}  # transformers 4 names
    te["text_model.embeddings.position_ids"] = torch.arange(12)[None]
    save_file(te, str(te_file))
    modules = import_source(folder, tmp_path).modules
    dec = modules["vae_decoder"].decoder.state_dict()
    for k, v in vae.items():
        if k.startswith("decoder."):
            assert torch.equal(dec[k[len("decoder."):]], v)
    clip = modules["text_encoder"].clip.state_dict()
    assert all(torch.equal(clip[k.removeprefix("text_model.")], v) for k, v in te.items() if k in
               {"text_model." + n for n in clip})


SD_REFUSALS = {
    "tokenizer files": (lambda p: [f.unlink() for f in (p / "tokenizer").glob("*.json")
                                   if f.name != "tokenizer_config.json"], "tokenizer in "),
    "tokenizer class": (lambda p: edit_json(p / "model_index.json", tokenizer=["transformers", "T5Tokenizer"]),
                        "unsupported tokenizer ['transformers', 'T5Tokenizer'] (supported: CLIPTokenizer"),
    "lcm unet": (lambda p: edit_json(p / "unet/config.json", time_cond_proj_dim=8),
                 "unsupported UNet2DConditionModel option time_cond_proj_dim=8 (supported: None)"),
    "text encoder weights": (lambda p: edit_json(p / "text_encoder/config.json", intermediate_size=48),
                             "weights do not match its config"),
}


@pytest.mark.parametrize("case", list(SD_REFUSALS))
def test_sd_refusals(sd_folder, tmp_path, capsys, case):
    edit, message = SD_REFUSALS[case]
    folder = copy_folder(sd_folder, tmp_path / "pipe")
    edit(folder)
    out = tmp_path / "bundle"
    assert main(["import", str(folder), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not out.exists()
