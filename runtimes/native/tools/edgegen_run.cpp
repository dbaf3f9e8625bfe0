// edgegen-run: sample from a bundle with the native runtime and write a PNG grid.
//
//   edgegen-run BUNDLE [--sampler ddim] [--steps 50] [--eta 0] [--plan PLAN.json] [--n 16]
//               [--seed 0] [--label 3] [--guidance W] [--batch-size 64] [--device CPU]
//               [--backend openvino] [--precision fp32] [--no-verify] [--raw OUT.f32] [--progress]
//               [--temperature T] [--top-k K] [--top-p P] [--prompt "a handwritten seven"]
//               [--prompt-tokens 5,17,3] [--codes OUT.txt] [--init-image in.png [--strength 0.6] [--mask mask.png]]
//               [--text-encoder-device D] [--denoiser-device D] [--decoder-device D]
//               --out samples.png
//   edgegen-run BUNDLE --list-plans        the keys of the plans the bundle stores, one a line
//
// Token models (VQ-VAE prior, DALL-E): --label, or --prompt TEXT (tokenized natively with the bundle's
// tokenizer model, ABI 5), or --prompt-tokens (ids of the bundle's tokenizer: `edgegen tokenize
// BUNDLE "a handwritten seven"` prints them); --codes writes the generated codes.
// Latent text-to-image models take --prompt / --prompt-tokens too (their text encoder runs natively).
// Image-to-image (--init-image, --strength) and inpainting (--mask: white = generate, black = keep)
// run the bundle's stored edited plans (`edgegen export RUN --plans ddim-50@strength0.6,ddim-50@inpaint`;
// --list-plans shows them). The PNGs must have the model's size and channels (no resizing).
//
// Per-stage devices (ABI 5): each stage compiles its networks on its own OpenVINO device (default
// --device); the decoder's also runs the image encoder.
//
// Progress: a `step D/T` line on stderr (when stderr is a terminal, or with --progress).
// Ctrl-C cancels the run through the progress callback (exit code 130).
//
// Bad input: one line `edgegen-run: error: ...` on stderr and exit code 2.
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "edgegen.hpp"
#include "png_grid.hpp"

namespace {

const char *USAGE =
    "usage: edgegen-run BUNDLE [--sampler NAME] [--steps N] [--eta E] [--plan PLAN.json] [--n N] [--seed S]\n"
    "                   [--label K] [--guidance W] [--batch-size B] [--device CPU|GPU|NPU|AUTO]\n"
    "                   [--backend openvino|tensorrt|aoti|executorch] [--precision fp32|fp16|int8] [--threads T]\n"
    "                   [--no-verify] [--raw OUT.f32] [--progress]\n"
    "                   [--temperature T] [--top-k K] [--top-p P] [--prompt TEXT | --prompt-tokens ID,ID,...]\n"
    "                   [--codes OUT.txt]\n"
    "                   [--init-image IN.png [--strength S] [--mask MASK.png]]\n"
    "                   [--text-encoder-device D] [--denoiser-device D] [--decoder-device D]\n"
    "                   --out samples.png\n"
    "       edgegen-run BUNDLE --list-plans\n";

volatile std::sig_atomic_t g_interrupted = 0;
void on_sigint(int) { g_interrupted = 1; }

struct ProgressLine {
  bool show = false;
};

// The progress callback: a `step D/T` line on stderr; Ctrl-C (SIGINT) cancels.
int progress_line(uint64_t done, uint64_t total, void *user) {
  if (static_cast<ProgressLine *>(user)->show) {
    std::fprintf(stderr, "\rstep %llu/%llu", (unsigned long long)done, (unsigned long long)total);
    if (done == total) std::fputc('\n', stderr);
    std::fflush(stderr);
  }
  return g_interrupted ? 1 : 0;
}

struct UsageError {
  std::string msg;
};

long long parse_int(const std::string &flag, const std::string &v, long long lo, long long hi) {
  char *end = nullptr;
  errno = 0;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end || errno == ERANGE || x < lo || x > hi)
    throw UsageError{flag + " expects an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" + v + "'"};
  return x;
}

unsigned long long parse_u64(const std::string &flag, const std::string &v) {
  char *end = nullptr;
  errno = 0;
  const unsigned long long x = std::strtoull(v.c_str(), &end, 10);
  if (v.empty() || v[0] == '-' || *end || errno == ERANGE)
    throw UsageError{flag + " expects a non-negative 64-bit integer, got '" + v + "'"};
  return x;
}

double parse_double(const std::string &flag, const std::string &v) {
  char *end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end || !std::isfinite(x)) throw UsageError{flag + " expects a number, got '" + v + "'"};
  return x;
}

// A PNG of the model's size and channels -> C x H x W floats in the data range (edgegen/images.py
// read_image: lo + (hi - lo) * (v / 255), float32).
std::vector<float> read_init_image(const std::string &path, const edgegen_bundle_info &info) {
  std::vector<uint8_t> px;
  int64_t h = 0, w = 0, c = 0;
  const std::string err = edgegen_tools::read_png(path, px, h, w, c);
  if (!err.empty()) throw UsageError{"the init image: " + err};
  if (info.sample_rank != 3) throw UsageError{"--init-image needs a model of C x H x W images"};
  const int64_t mc = info.sample_shape[0], mh = info.sample_shape[1], mw = info.sample_shape[2];
  if (h != mh || w != mw)
    throw UsageError{"the init image " + path + " is " + std::to_string(w) + "x" + std::to_string(h) + ", this model takes " +
                     std::to_string(mw) + "x" + std::to_string(mh) + " images"};
  if (c != mc)
    throw UsageError{"the init image " + path + " has " + std::to_string(c) + " channel(s), this model takes " +
                     std::to_string(mc) + " channel(s) (" + (mc == 1 ? "greyscale" : "RGB") + ")"};
  const float lo = float(info.data_range[0]), span = float(info.data_range[1] - info.data_range[0]);
  std::vector<float> x(size_t(c * h * w));
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t i = 0; i < h * w; ++i) {
      const float a = float(px[size_t(i * c + ch)]) / 255.0f;
      const float t = span * a;
      x[size_t(ch * h * w + i)] = lo + t;
    }
  return x;
}

// A binary greyscale PNG (white 255 = generate, black 0 = keep) -> H x W of 1 / 0 (images.py read_mask).
std::vector<float> read_mask_png(const std::string &path, const edgegen_bundle_info &info) {
  std::vector<uint8_t> px;
  int64_t h = 0, w = 0, c = 0;
  const std::string err = edgegen_tools::read_png(path, px, h, w, c);
  if (!err.empty()) throw UsageError{"the mask: " + err};
  if (info.sample_rank != 3) throw UsageError{"--mask needs a model of C x H x W images"};
  const int64_t mh = info.sample_shape[1], mw = info.sample_shape[2];
  if (h != mh || w != mw)
    throw UsageError{"the mask " + path + " is " + std::to_string(w) + "x" + std::to_string(h) + ", it must be " +
                     std::to_string(mw) + "x" + std::to_string(mh) + " like the image"};
  if (c != 1) throw UsageError{"the mask " + path + " must be a greyscale image of black (keep) and white (generate)"};
  std::vector<float> m(px.size());
  for (size_t i = 0; i < px.size(); ++i) {
    if (px[i] != 0 && px[i] != 255)
      throw UsageError{"the mask " + path + " is not binary: use only black (0, keep) and white (255, generate)"};
    m[i] = px[i] == 255 ? 1.0f : 0.0f;
  }
  return m;
}

std::string read_file(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError{"cannot read plan file " + path};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int run(int argc, char **argv) {
  std::string bundle_path, out, raw, plan_file, sampler, backend = "openvino", device = "CPU", precision = "fp32";
  std::string text_device, denoiser_device, decoder_device;  // "" = --device
  edgegen_sample_params sp;
  edgegen_sample_params_init(&sp);
  sp.n = 16;
  bool verify = true, list_plans = false;
  int threads = 0;
  std::vector<int64_t> prompt;
  std::string prompt_text;
  bool has_prompt_text = false;
  std::string codes_file, init_image_file, mask_file;
  ProgressLine progress;
  progress.show = isatty(STDERR_FILENO) != 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::fputs(USAGE, stdout);
      return 0;
    }
    if (a == "--no-verify") {
      verify = false;
      continue;
    }
    if (a == "--progress") {
      progress.show = true;
      continue;
    }
    if (a == "--list-plans") {
      list_plans = true;
      continue;
    }
    if (a.rfind("--", 0) == 0) {
      if (i + 1 >= argc) throw UsageError{a + " needs a value"};
      const std::string v = argv[++i];
      if (a == "--sampler") sampler = v;
      else if (a == "--steps") sp.steps = int(parse_int(a, v, 1, 100000));
      else if (a == "--eta") sp.eta = parse_double(a, v);
      else if (a == "--plan") plan_file = v;
      else if (a == "--n") sp.n = uint32_t(parse_int(a, v, 0, 4294967295LL));
      else if (a == "--seed") sp.seed = parse_u64(a, v);
      else if (a == "--label") sp.label = parse_int(a, v, 0, 1LL << 40);
      else if (a == "--guidance") sp.guidance = parse_double(a, v);
      else if (a == "--batch-size") sp.batch_size = uint32_t(parse_int(a, v, 1, 1 << 20));
      else if (a == "--device") device = v;
      else if (a == "--text-encoder-device") text_device = v;
      else if (a == "--denoiser-device") denoiser_device = v;
      else if (a == "--decoder-device") decoder_device = v;
      else if (a == "--backend") backend = v;
      else if (a == "--precision") precision = v;
      else if (a == "--threads") threads = int(parse_int(a, v, 0, 1024));
      else if (a == "--out") out = v;
      else if (a == "--raw") raw = v;
      else if (a == "--temperature") sp.temperature = parse_double(a, v);
      else if (a == "--top-k") sp.top_k = parse_int(a, v, 0, 1LL << 40);
      else if (a == "--top-p") sp.top_p = parse_double(a, v);
      else if (a == "--codes") codes_file = v;
      else if (a == "--init-image") init_image_file = v;
      else if (a == "--mask") mask_file = v;
      else if (a == "--strength") sp.strength = parse_double(a, v);
      else if (a == "--prompt") {
        prompt_text = v;
        has_prompt_text = true;
      }
      else if (a == "--prompt-tokens") {
        std::stringstream ids(v);
        std::string id;
        while (std::getline(ids, id, ',')) prompt.push_back(parse_int(a, id, 0, 1LL << 40));
        if (prompt.empty()) throw UsageError{"--prompt-tokens needs comma-separated token ids"};
      }
      else throw UsageError{"unknown option " + a};
    } else if (bundle_path.empty()) {
      bundle_path = a;
    } else {
      throw UsageError{"unexpected argument '" + a + "'"};
    }
  }
  if (bundle_path.empty()) throw UsageError{"missing BUNDLE (see --help)"};
  if (has_prompt_text && !prompt.empty()) throw UsageError{"give --prompt or --prompt-tokens, not both"};
  if (list_plans) {
    edgegen_load_params lp;
    edgegen_load_params_init(&lp);
    lp.backend = backend.c_str();
    lp.verify_sha256 = verify ? 1 : 0;
    edgegen::Bundle bundle(bundle_path, lp);
    for (const std::string &k : bundle.plan_keys()) std::printf("%s\n", k.c_str());
    return 0;
  }
  if (out.empty()) throw UsageError{"missing --out samples.png"};
  if (out.size() < 4 || out.compare(out.size() - 4, 4, ".png") != 0) throw UsageError{"--out must end in .png, got " + out};
  std::string plan_json;
  if (!plan_file.empty()) {
    plan_json = read_file(plan_file);
    sp.plan_json = plan_json.c_str();
  }
  if (!sampler.empty()) sp.sampler = sampler.c_str();

  edgegen_load_params lp;
  edgegen_load_params_init(&lp);
  lp.backend = backend.c_str();
  lp.device = device.c_str();
  lp.text_encoder_device = text_device.empty() ? nullptr : text_device.c_str();
  lp.denoiser_device = denoiser_device.empty() ? nullptr : denoiser_device.c_str();
  lp.decoder_device = decoder_device.empty() ? nullptr : decoder_device.c_str();
  lp.precision = precision.c_str();
  lp.verify_sha256 = verify ? 1 : 0;
  lp.num_threads = threads;
  edgegen::Bundle bundle(bundle_path, lp);
  const edgegen_bundle_info info = bundle.info();
  edgegen_stats st;
  sp.progress = progress_line;
  sp.progress_user = &progress;
  std::signal(SIGINT, on_sigint);
  if (!prompt.empty()) {
    sp.prompt_tokens = prompt.data();
    sp.prompt_len = prompt.size();
  }
  const char *prompt_texts[1] = {prompt_text.c_str()};
  if (has_prompt_text) sp.prompts = prompt_texts;  // one prompt for all samples (prompt_count 1)
  std::vector<float> init_image, mask;
  if (init_image_file.empty() && (!mask_file.empty() || !std::isnan(sp.strength)))
    throw UsageError{"--mask and --strength need --init-image"};
  if (!init_image_file.empty()) {
    init_image = read_init_image(init_image_file, info);
    sp.init_image = init_image.data();
    sp.image_count = 1;
    sp.image_channels = uint32_t(info.sample_shape[0]);
    sp.image_height = uint32_t(info.sample_shape[1]);
    sp.image_width = uint32_t(info.sample_shape[2]);
  }
  if (!mask_file.empty()) {
    mask = read_mask_png(mask_file, info);
    sp.mask = mask.data();
    sp.mask_height = uint32_t(info.sample_shape[1]);
    sp.mask_width = uint32_t(info.sample_shape[2]);
  }
  const edgegen_stage_info stages = bundle.stages();
  std::vector<int64_t> codes;
  if (stages.image_tokens > 0) {
    codes.resize(size_t(sp.n) * size_t(stages.image_tokens));
    sp.codes_out = codes.data();
    sp.codes_count = codes.size();
  }
  std::vector<float> x;
  try {
    x = bundle.sample(sp, &st);
  } catch (const edgegen::Exception &e) {
    if (e.status() != EDGEGEN_ERR_CANCELLED) throw;
    if (progress.show) std::fputc('\n', stderr);
    std::fprintf(stderr, "edgegen-run: %s\n", e.what());
    return 130;
  }
  int64_t c = 1, h = 1, w = 1;  // (C, H, W); lower-rank samples are shown as one row of pixels
  if (info.sample_rank == 3) c = info.sample_shape[0], h = info.sample_shape[1], w = info.sample_shape[2];
  else if (info.sample_rank == 2) h = info.sample_shape[0], w = info.sample_shape[1];
  else if (info.sample_rank == 1) w = info.sample_shape[0];
  else throw UsageError{"cannot draw samples of rank " + std::to_string(info.sample_rank) + " as an image"};
  const int64_t nrow = info.num_classes > 0 ? std::min<int64_t>(sp.n, 10) : 0;
  const std::string err = edgegen_tools::write_png_grid(out, x.data(), sp.n, c, h, w, info.data_range[0],
                                                        info.data_range[1], nrow);
  if (!err.empty()) throw UsageError{err};
  if (!raw.empty()) {
    std::ofstream f(raw, std::ios::binary);
    f.write(reinterpret_cast<const char *>(x.data()), std::streamsize(x.size() * sizeof(float)));
    if (!f) throw UsageError{"cannot write " + raw};
  }
  if (!codes_file.empty()) {  // one line per sample, codes separated by spaces
    if (codes.empty()) throw UsageError{"--codes: this model generates no codes (it samples a plan)"};
    std::ofstream f(codes_file);
    for (uint32_t i = 0; i < sp.n; ++i)
      for (int64_t k = 0; k < stages.image_tokens; ++k)
        f << codes[size_t(i) * size_t(stages.image_tokens) + size_t(k)] << (k + 1 < stages.image_tokens ? ' ' : '\n');
    if (!f) throw UsageError{"cannot write " + codes_file};
  }
  const double host = st.total_seconds - st.network_seconds;
  std::printf("wrote %s (%u samples, %s on %s %s)\n", out.c_str(), sp.n, info.family, backend.c_str(), device.c_str());
  std::printf("latency: %.4f s total, %.4f s in %llu network calls, host overhead %.4f s (%.2f%%), %.3f ms/sample\n",
              st.total_seconds, st.network_seconds, (unsigned long long)st.network_calls, host,
              100.0 * host / st.total_seconds, 1000.0 * st.total_seconds / sp.n);
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  try {
    return run(argc, argv);
  } catch (const UsageError &e) {
    std::fprintf(stderr, "edgegen-run: error: %s\n", e.msg.c_str());
  } catch (const edgegen::Exception &e) {
    std::fprintf(stderr, "edgegen-run: error: %s\n", e.what());
  } catch (const std::exception &e) {
    std::fprintf(stderr, "edgegen-run: error: %s\n", e.what());
  }
  return 2;
}
