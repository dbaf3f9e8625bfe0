// Sampler plans (runtimes/plans.py documents the edgegen.plan/1 format), parsed and checked
// once into index-based structures the interpreter runs without string lookups.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "manifest.hpp"

namespace edgegen {

struct Term {
  int reg;
  float coef;  // float64 in the JSON, rounded once to float32 as numpy's np.float32(c)
};

struct Op {
  enum Kind { AFFINE, CLIP, LANGEVIN, BLEND } kind;
  int dst;
  std::vector<Term> terms;  // AFFINE
  bool has_noise = false;   // AFFINE: one Philox draw (counter + 1)
  float noise = 0.f;
  float lo = 0.f, hi = 0.f;  // CLIP
  int score = -1;              // LANGEVIN: score register S, R += step s + sqrt(2 step) z, s = scale * S
  float scale = 0.f;
  double snr = 0.0, alpha = 0.0;
  int a = -1, b = -1, mask = -1;  // BLEND: R = mask * a + (1 - mask) * b (inpainting)
};

struct Step {
  std::optional<float> t;  // nullopt: the role has no time input (GAN generator)
  int src, dst;
  std::vector<Op> ops;
  std::vector<Op> preview_ops;  // run after the network call only when a preview is due (plans.py)
};

struct Plan {
  std::string sampler;
  json params;
  std::vector<std::string> registers;
  std::vector<std::vector<int64_t>> shapes;  // per-sample dims of each register
  std::vector<size_t> elems;                 // per-sample element count of each register
  std::vector<Op> init;
  std::vector<Step> steps;
  int output;
  std::vector<int> inputs;  // registers the caller fills before init (image-to-image, inpainting)
  int preview = -1;         // the register holding x0 after each step's ops (plans.py "preview"); -1: none
};

// Parse and validate (known ops and registers, shapes agree, no read before write);
// Error(MALFORMED) with a one-line reason otherwise.
Plan parse_plan(const json &j, const std::vector<int64_t> &sample_shape);
Plan parse_plan_text(const std::string &text, const std::vector<int64_t> &sample_shape);

// Image-to-image / inpainting: which stored edit of a plan (plans.py edit_plan; its key is the
// plan's key + "-strength<s:g>" and/or "-inpaint", plans.py plan_key).
struct PlanEdit {
  bool any = false;       // false: the plain plan (stored edits are skipped)
  bool has_strength = false;
  double strength = 0.0;  // matched as printf("%g"), like the key
  bool inpaint = false;
};

// printf("%g", v): Python's f"{v:g}" for the values plan keys hold.
std::string format_g(double v);

// The stored plan for a sampler name + steps (+ eta), resolved like the Python Pipeline:
// steps 0 = the sampler's default (ddpm: all T steps, others: sampling.defaults.steps).
// Error(UNSUPPORTED) for an unknown sampler or a plan the bundle does not store.
const json &select_stored_plan(const Manifest &m, const std::string &sampler, int steps, double eta,
                               const PlanEdit &edit = PlanEdit());

}  // namespace edgegen
