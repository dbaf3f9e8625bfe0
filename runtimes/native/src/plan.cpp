#include "plan.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "error.hpp"

namespace edgegen {
namespace {

constexpr const char *PLAN_FORMAT = "edgegen.plan/1";

struct Parser {
  std::map<std::string, int> index;
  std::vector<bool> written;
  const Plan &plan;

  int reg(const json &name, const char *what) {
    const std::string s = name.get<std::string>();
    auto it = index.find(s);
    if (it == index.end()) fail(EDGEGEN_ERR_MALFORMED, std::string("plan ") + what + " unknown register '" + s + "'");
    return it->second;
  }
  int read(const json &name) {
    const int r = reg(name, "reads");
    if (!written[r]) fail(EDGEGEN_ERR_MALFORMED, "plan reads register '" + plan.registers[r] + "' before writing it");
    return r;
  }

  Op op(const json &j) {
    Op o;
    const std::string kind = j.at("op").get<std::string>();
    if (kind == "affine") {
      o.kind = Op::AFFINE;
      for (const auto &term : j.at("terms")) {
        if (!term.is_array() || term.size() != 2) fail(EDGEGEN_ERR_MALFORMED, "plan affine term is not [register, coef]");
        o.terms.push_back({read(term[0]), float(term[1].get<double>())});
      }
      if (j.contains("noise")) {
        o.has_noise = true;
        o.noise = float(j["noise"].get<double>());
      }
      o.dst = reg(j.at("dst"), "writes");
      if (o.terms.empty() && !o.has_noise) fail(EDGEGEN_ERR_MALFORMED, "plan affine op has no terms and no noise");
      for (const Term &t : o.terms)
        if (plan.elems[t.reg] != plan.elems[o.dst])
          fail(EDGEGEN_ERR_MALFORMED, "plan affine op mixes registers of different shapes ('" + plan.registers[t.reg] +
                                          "' into '" + plan.registers[o.dst] + "')");
    } else if (kind == "clip") {
      o.kind = Op::CLIP;
      o.dst = read(j.at("dst"));
      o.lo = float(j.at("lo").get<double>());
      o.hi = float(j.at("hi").get<double>());
    } else if (kind == "langevin") {  // one Langevin corrector step (plans.py documents the math)
      o.kind = Op::LANGEVIN;
      o.dst = read(j.at("dst"));
      o.score = read(j.at("score"));
      o.scale = float(j.at("scale").get<double>());
      o.snr = j.at("snr").get<double>();
      o.alpha = j.at("alpha").get<double>();
      o.has_noise = true;
      if (plan.elems[o.score] != plan.elems[o.dst])
        fail(EDGEGEN_ERR_MALFORMED, "plan langevin op: score and register shapes differ");
    } else if (kind == "blend") {  // inpainting: R = M * A + (1 - M) * B, elementwise
      o.kind = Op::BLEND;
      o.a = read(j.at("a"));
      o.b = read(j.at("b"));
      o.mask = read(j.at("mask"));
      o.dst = reg(j.at("dst"), "writes");
      if (plan.elems[o.a] != plan.elems[o.dst] || plan.elems[o.b] != plan.elems[o.dst] ||
          plan.elems[o.mask] != plan.elems[o.dst])
        fail(EDGEGEN_ERR_MALFORMED, "plan blend op mixes registers of different shapes");
    } else {
      fail(EDGEGEN_ERR_MALFORMED, "unknown plan op '" + kind + "'");
    }
    written[o.dst] = true;
    return o;
  }
};

}  // namespace

Plan parse_plan(const json &j, const std::vector<int64_t> &sample_shape) {
  Plan p;
  try {
    if (!j.is_object() || !j.contains("format") || j["format"] != PLAN_FORMAT)
      fail(EDGEGEN_ERR_MALFORMED, std::string("unsupported plan format (expected ") + PLAN_FORMAT + ")");
    p.sampler = j.at("sampler").get<std::string>();
    p.params = j.value("params", json::object());
    p.registers = j.at("registers").get<std::vector<std::string>>();
    if (p.registers.empty()) fail(EDGEGEN_ERR_MALFORMED, "plan has no registers");
    const json shapes = j.value("shapes", json::object());
    Parser ps{{}, std::vector<bool>(p.registers.size(), false), p};
    for (size_t i = 0; i < p.registers.size(); ++i) {
      if (!ps.index.emplace(p.registers[i], int(i)).second)
        fail(EDGEGEN_ERR_MALFORMED, "plan register '" + p.registers[i] + "' is listed twice");
      auto shape = shapes.contains(p.registers[i]) ? shapes[p.registers[i]].get<std::vector<int64_t>>() : sample_shape;
      size_t n = 1;
      for (int64_t d : shape) {
        if (d <= 0 || d > (int64_t(1) << 24)) fail(EDGEGEN_ERR_MALFORMED, "plan register '" + p.registers[i] + "' has a bad shape");
        n *= size_t(d);
      }
      if (n > (size_t(1) << 28)) fail(EDGEGEN_ERR_MALFORMED, "plan register '" + p.registers[i] + "' is too large");
      p.shapes.push_back(shape);
      p.elems.push_back(n);
    }
    for (const auto &[name, _] : shapes.items())
      if (!ps.index.count(name)) fail(EDGEGEN_ERR_MALFORMED, "plan gives a shape for unknown register '" + name + "'");
    if (j.contains("inputs") && !j["inputs"].is_null())
      for (const auto &name : j["inputs"]) {  // filled by the caller, so readable from the start
        const int r = ps.reg(name, "takes as input an");
        ps.written[r] = true;
        p.inputs.push_back(r);
      }
    if (j.contains("preview") && !j["preview"].is_null()) p.preview = ps.reg(j["preview"], "previews an");
    for (const auto &o : j.at("init")) p.init.push_back(ps.op(o));
    for (const auto &s : j.at("steps")) {
      Step st;
      const json &t = s.at("t");
      if (!t.is_null()) st.t = float(t.get<double>());
      st.src = ps.read(s.at("src"));
      st.dst = ps.reg(s.at("dst"), "writes");
      ps.written[st.dst] = true;
      if (s.contains("preview_ops")) {  // before ops: they read the registers as the network call left them
        const bool was = p.preview >= 0 && ps.written[p.preview];  // they run only when a preview is due
        for (const auto &o : s.at("preview_ops")) {
          Op op = ps.op(o);
          if (op.dst != p.preview || (op.kind != Op::AFFINE && op.kind != Op::CLIP) || op.has_noise)
            fail(EDGEGEN_ERR_MALFORMED, "plan preview_ops must be affine ops without noise (or clips) writing the preview register");
          st.preview_ops.push_back(std::move(op));
        }
        if (p.preview >= 0) ps.written[p.preview] = was;
      }
      for (const auto &o : s.at("ops")) st.ops.push_back(ps.op(o));
      p.steps.push_back(std::move(st));
    }
    p.output = ps.read(j.at("output"));
  } catch (const json::exception &e) {
    fail(EDGEGEN_ERR_MALFORMED, std::string("malformed plan: ") + e.what());
  }
  return p;
}

Plan parse_plan_text(const std::string &text, const std::vector<int64_t> &sample_shape) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception &e) {
    fail(EDGEGEN_ERR_MALFORMED, std::string("malformed plan JSON: ") + e.what());
  }
  return parse_plan(j, sample_shape);
}

std::string format_g(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

namespace {

// Whether a stored plan is the edit asked for (none: a plan without input registers).
bool edit_matches(const json &plan, const json &params, const PlanEdit &edit) {
  const bool has_inputs = plan.contains("inputs") && plan["inputs"].is_array() && !plan["inputs"].empty();
  const bool inpaint = params.contains("inpaint") && params["inpaint"].is_boolean() && params["inpaint"].get<bool>();
  const bool has_strength = params.contains("strength") && params["strength"].is_number();
  if (!edit.any) return !has_inputs && !inpaint && !has_strength;
  if (!has_inputs || inpaint != edit.inpaint || has_strength != edit.has_strength) return false;
  return !has_strength || format_g(params["strength"].get<double>()) == format_g(edit.strength);
}

}  // namespace

const json &select_stored_plan(const Manifest &m, const std::string &sampler_in, int steps, double eta,
                               const PlanEdit &edit) {
  try {
    const json defaults = m.sampling.value("defaults", json::object());
    if (sampler_in.empty() && !defaults.contains("sampler"))
      fail(EDGEGEN_ERR_INVALID_ARGUMENT, "no sampler given and the bundle names no default sampler");
    const std::string sampler = sampler_in.empty() ? defaults["sampler"].get<std::string>() : sampler_in;
    std::vector<std::string> known;
    if (m.sampling.contains("samplers")) known = m.sampling["samplers"].get<std::vector<std::string>>();
    else
      for (const auto &[key, plan] : m.plans.items()) known.push_back(plan.value("sampler", ""));
    if (std::find(known.begin(), known.end(), sampler) == known.end()) {
      std::string choices;
      for (const auto &k : known) choices += (choices.empty() ? "" : ", ") + k;
      fail(EDGEGEN_ERR_UNSUPPORTED, "unknown sampler '" + sampler + "' (choose " + choices + ")");
    }
    if (steps < 0) fail(EDGEGEN_ERR_INVALID_ARGUMENT, "steps must be >= 1, got " + std::to_string(steps));
    if (!(eta >= 0.0) || !std::isfinite(eta)) fail(EDGEGEN_ERR_INVALID_ARGUMENT, "eta must be >= 0");
    // steps 0: the bundle's default steps for its default sampler; for another sampler, the
    // stored plan of that sampler (the bundle stores each sampler with the steps it defaults to).
    if (steps == 0 && sampler == defaults.value("sampler", std::string()) && defaults.contains("steps") &&
        !defaults["steps"].is_null())
      steps = defaults["steps"].get<int>();
    const bool clip = defaults.value("clip_x0", true);
    std::string stored;
    for (const auto &[key, plan] : m.plans.items()) {
      const json params = plan.value("params", json::object());
      if (plan.value("sampler", "") != sampler) continue;
      if (steps > 0 && params.value("steps", -1) != steps) continue;
      if (params.value("eta", 0.0) != eta) continue;
      if (params.contains("clip_x0") && params["clip_x0"].get<bool>() != clip) continue;
      if (!edit_matches(plan, params, edit)) continue;
      return plan;
    }
    for (const auto &[key, plan] : m.plans.items()) stored += (stored.empty() ? "" : ", ") + key;
    if (edit.any) {
      const std::string what = edit.has_strength ? "image-to-image at strength " + format_g(edit.strength) : "";
      const std::string spec = sampler + (steps > 0 ? "-" + std::to_string(steps) : std::string()) +
                               (edit.has_strength ? "@strength" + format_g(edit.strength) : "") +
                               (edit.inpaint ? "@inpaint" : "");
      fail(EDGEGEN_ERR_UNSUPPORTED, "the bundle stores no " + sampler + " plan with " + std::to_string(steps) + " steps for " +
                                        what + (edit.has_strength && edit.inpaint ? " with " : "") +
                                        (edit.inpaint ? "inpainting" : "") + " (stored: " +
                                        (stored.empty() ? "none" : stored) + "); export it with `edgegen export RUN --plans " +
                                        spec + "`");
    }
    fail(EDGEGEN_ERR_UNSUPPORTED, "the bundle stores no " + sampler + " plan with " + std::to_string(steps) + " steps" +
                                      (eta != 0.0 ? " and eta " + std::to_string(eta) : std::string()) +
                                      " (stored: " + (stored.empty() ? "none" : stored) +
                                      "); pass the plan as JSON instead");
  } catch (const json::exception &e) {
    fail(EDGEGEN_ERR_MALFORMED, std::string("malformed sampling section in manifest: ") + e.what());
  }
}

}  // namespace edgegen
