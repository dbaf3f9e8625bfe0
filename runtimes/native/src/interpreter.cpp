#include "interpreter.hpp"

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstring>
#include <functional>

#include "error.hpp"
#include "rng.hpp"

namespace edgegen {

namespace {

using Clock = std::chrono::steady_clock;

template <typename T>
void fill_as(std::vector<unsigned char> &buf, size_t count, const std::function<T(size_t)> &value) {
  buf.resize(count * sizeof(T));
  T *p = reinterpret_cast<T *>(buf.data());
  for (size_t i = 0; i < count; ++i) p[i] = value(i);
}

}  // namespace

RoleRunner::RoleRunner(const RoleSpec &role, Network &net) : role_(role), net_(net) {
  for (size_t i = 0; i < role.inputs.size(); ++i) {
    const auto &in = role.inputs[i];
    if (in.name == role.time_input) t_idx_ = int(i);
    else if (in.name == role.label_input) y_idx_ = int(i);
    else if (!role.context_input.empty() && in.name == role.context_input) c_idx_ = int(i);
    else if (x_idx_ < 0) x_idx_ = int(i);
    else fail(EDGEGEN_ERR_UNSUPPORTED, "role input '" + in.name + "' is neither the sample, the time, the label nor the "
                                     "context input");
  }
  if (x_idx_ < 0) fail(EDGEGEN_ERR_MALFORMED, "the sampling role has no sample input");
  for (const auto *list : {&role.inputs, &role.outputs})
    for (const TensorSpec &t : *list)
      if (t.has_dynamic()) fail(EDGEGEN_ERR_MALFORMED, "a plan role's tensor '" + t.name + "' has a dynamic dim other than the batch");
  if (role.inputs[x_idx_].dtype != DType::F32) fail(EDGEGEN_ERR_UNSUPPORTED, "the sample input must be float32");
  if (role.outputs[0].dtype != DType::F32) fail(EDGEGEN_ERR_UNSUPPORTED, "the role's output must be float32");
  x_elems_ = size_t(role.inputs[x_idx_].per_sample_elems());
  out_elems_ = size_t(role.outputs[0].per_sample_elems());
  if (c_idx_ >= 0) {
    if (role.inputs[c_idx_].dtype != DType::F32) fail(EDGEGEN_ERR_UNSUPPORTED, "the context input must be float32");
    c_elems_ = size_t(role.inputs[c_idx_].per_sample_elems());
  }
}

void RoleRunner::call(int64_t batch, const float *x, std::optional<float> t, const int64_t *y, float *out,
                      edgegen_stats &stats) {
  const auto t0 = Clock::now();
  std::vector<HostTensor> inputs(role_.inputs.size());
  for (size_t i = 0; i < role_.inputs.size(); ++i) {
    const TensorSpec &spec = role_.inputs[i];
    inputs[i].dtype = spec.dtype;
    inputs[i].shape = spec.concrete(batch);
  }
  inputs[x_idx_].data = x;
  const size_t b = size_t(batch);
  if (t_idx_ >= 0) {
    const float tv = *t;  // the plan was checked: every step has t when the role takes it
    switch (role_.inputs[t_idx_].dtype) {  // numpy's astype: float32 -> int truncates
      case DType::F32: fill_as<float>(t_buf_, b, [&](size_t) { return tv; }); break;
      case DType::I64: fill_as<int64_t>(t_buf_, b, [&](size_t) { return int64_t(tv); }); break;
      case DType::I32: fill_as<int32_t>(t_buf_, b, [&](size_t) { return int32_t(tv); }); break;
      default: fail(EDGEGEN_ERR_UNSUPPORTED, "unsupported dtype for the time input");
    }
    inputs[t_idx_].data = t_buf_.data();
  }
  if (y_idx_ >= 0) {
    switch (role_.inputs[y_idx_].dtype) {
      case DType::I64: fill_as<int64_t>(y_buf_, b, [&](size_t i) { return y[i]; }); break;
      case DType::I32: fill_as<int32_t>(y_buf_, b, [&](size_t i) { return int32_t(y[i]); }); break;
      default: fail(EDGEGEN_ERR_UNSUPPORTED, "unsupported dtype for the label input");
    }
    inputs[y_idx_].data = y_buf_.data();
  }
  if (c_idx_ >= 0) {  // context[y], the null context (last row) for y = -1
    if (!table_ || table_rows_ == 0) fail(EDGEGEN_ERR_INVALID_ARGUMENT, "this model needs a text context: give a prompt");
    c_buf_.resize(b * c_elems_);
    for (size_t i = 0; i < b; ++i) {
      const int64_t yi = y[i];
      if (yi < -1 || yi >= int64_t(table_rows_) - 1) fail(EDGEGEN_ERR_RUNTIME, "context row out of range");
      const size_t row = yi == -1 ? table_rows_ - 1 : size_t(yi);
      std::memcpy(c_buf_.data() + i * c_elems_, table_ + row * c_elems_, c_elems_ * sizeof(float));
    }
    inputs[c_idx_].data = c_buf_.data();
  }
  net_.run(inputs, batch, out, b * out_elems_);
  stats.network_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
  stats.network_calls += 1;
}

void Progress::check() const {
  if (cancel && cancel->load(std::memory_order_acquire) != cancel_seen)
    fail(EDGEGEN_ERR_CANCELLED, "cancelled by edgegen_cancel after " + std::to_string(done) + " of " +
                                    std::to_string(total) + " steps");
}

void Progress::step() {
  ++done;
  if (fn && fn(done, total, user) != 0)
    fail(EDGEGEN_ERR_CANCELLED, "cancelled by the callback after " + std::to_string(done) + " of " +
                                    std::to_string(total) + " steps");
  check();
}

void check_plan_fits_role(const Plan &plan, const RoleRunner &runner) {
  for (const Step &s : plan.steps) {
    if (s.t.has_value() != runner.has_time())
      fail(EDGEGEN_ERR_MALFORMED, runner.has_time() ? "plan step has no t but the role takes a time input"
                                                    : "plan step has a t but the role takes no time input");
    if (plan.elems[s.src] != runner.x_elems())
      fail(EDGEGEN_ERR_MALFORMED, "plan register '" + plan.registers[s.src] + "' does not match the role's sample input shape");
    if (plan.elems[s.dst] != runner.out_elems())
      fail(EDGEGEN_ERR_MALFORMED, "plan register '" + plan.registers[s.dst] + "' does not match the role's output shape");
  }
}

namespace {

class BatchRun {
 public:
  BatchRun(const RunRequest &req, RoleRunner &runner, uint32_t first, uint32_t batch, edgegen_stats &stats)
      : req_(req), plan_(*req.plan), runner_(runner), first_(first), batch_(batch), stats_(stats),
        regs_(plan_.registers.size()) {}

  const std::vector<float> &run() {
    for (size_t k = 0; k < plan_.inputs.size(); ++k) {  // the caller's registers, this batch's rows
      const int r = plan_.inputs[k];
      const size_t e = plan_.elems[r];
      const float *src = req_.inputs[k] + size_t(first_) * e;
      regs_[r].assign(src, src + size_t(batch_) * e);
    }
    for (const Op &op : plan_.init) apply(op);
    const bool guided = req_.guidance != 1.0 && req_.null_label.has_value() && (runner_.has_label() || runner_.has_context());
    const int64_t *y = req_.labels + first_;
    std::vector<int64_t> y2;
    if (guided) {  // labels [y; null] for one batched call on [x; x]
      y2.assign(y, y + batch_);
      y2.resize(2 * size_t(batch_), *req_.null_label);
    }
    Progress *progress = req_.progress;
    for (const Step &s : plan_.steps) {
      if (progress) progress->check();
      const size_t e = plan_.elems[s.dst];
      std::vector<float> &dst = scratch_;
      dst.resize(size_t(batch_) * e);
      if (!guided) {
        runner_.call(batch_, regs_[s.src].data(), s.t, y, dst.data(), stats_);
      } else {
        const size_t xe = size_t(batch_) * plan_.elems[s.src];
        x2_.resize(2 * xe);
        std::copy(regs_[s.src].begin(), regs_[s.src].end(), x2_.begin());
        std::copy(regs_[s.src].begin(), regs_[s.src].end(), x2_.begin() + xe);
        out2_.resize(2 * dst.size());
        runner_.call(2 * int64_t(batch_), x2_.data(), s.t, y2.data(), out2_.data(), stats_);
        const float w = float(req_.guidance);
        const float *e_c = out2_.data(), *e_u = out2_.data() + dst.size();
        for (size_t i = 0; i < dst.size(); ++i) dst[i] = e_u[i] + w * (e_c[i] - e_u[i]);
      }
      std::swap(regs_[s.dst], scratch_);
      const bool due = req_.preview && (progress->done + 1) % req_.preview_every == 0;
      if (due)
        for (const Op &op : s.preview_ops) apply(op);  // x0 for the preview only (plans.py "preview_ops")
      for (const Op &op : s.ops) apply(op);
      if (due) {
        const std::vector<float> &x0 = regs_[plan_.preview];
        if (x0.size() != size_t(batch_) * plan_.elems[plan_.preview])
          fail(EDGEGEN_ERR_MALFORMED, "the plan's preview register '" + plan_.registers[plan_.preview] +
                                          "' is not written by its steps");
        req_.preview(progress->done + 1, progress->total, x0.data(), batch_);
      }
      if (progress) progress->step();
    }
    return regs_[plan_.output];
  }

 private:
  void apply(const Op &op) {
    const size_t count = size_t(batch_) * plan_.elems[op.dst];
    if (op.kind == Op::CLIP) {
      for (float &v : regs_[op.dst]) v = std::min(std::max(v, op.lo), op.hi);
      return;
    }
    if (op.kind == Op::LANGEVIN) return langevin(op);
    if (op.kind == Op::BLEND) {  // plan_ops.py: m * a + (1 - m) * b, float32, in this order
      std::vector<float> &acc = scratch_;
      acc.resize(count);
      const float *a = regs_[op.a].data(), *b = regs_[op.b].data(), *m = regs_[op.mask].data();
      for (size_t i = 0; i < count; ++i) {
        const float ma = m[i] * a[i], mb = (1.0f - m[i]) * b[i];
        acc[i] = ma + mb;
      }
      std::swap(regs_[op.dst], scratch_);
      return;
    }
    // all right-hand sides are read before dst is written: accumulate into scratch
    std::vector<float> &acc = scratch_;
    acc.resize(count);
    if (op.has_noise) {
      noise_.resize(count);
      rng::gaussian(req_.seed, first_, batch_, plan_.elems[op.dst], draws_++, rng::STREAM_NOISE, noise_.data());
    }
    const size_t nt = op.terms.size();
    for (size_t i = 0; i < count; ++i) {
      float a;
      if (nt > 0) {
        a = op.terms[0].coef * regs_[op.terms[0].reg][i];
        for (size_t k = 1; k < nt; ++k) {
          const float term = op.terms[k].coef * regs_[op.terms[k].reg][i];
          a = a + term;
        }
        if (op.has_noise) {
          const float z = op.noise * noise_[i];
          a = a + z;
        }
      } else {
        a = op.noise * noise_[i];
      }
      acc[i] = a;
    }
    std::swap(regs_[op.dst], scratch_);
  }

  // Per sample i: s = scale * S (f32); step_i = 2 a (snr ||z_i|| / ||s_i||)^2 with the norms in
  // float64; R_i = R_i + f32(step_i) s_i + f32(sqrt(2 step_i)) z_i  (interpreter.py's langevin()).
  void langevin(const Op &op) {
    const size_t e = plan_.elems[op.dst], count = size_t(batch_) * e;
    noise_.resize(count);
    rng::gaussian(req_.seed, first_, batch_, e, draws_++, rng::STREAM_NOISE, noise_.data());
    std::vector<float> &x = regs_[op.dst];
    const std::vector<float> &S = regs_[op.score];
    for (uint32_t b = 0; b < batch_; ++b) {
      const size_t o = size_t(b) * e;
      double s2 = 0.0, z2 = 0.0;
      for (size_t i = 0; i < e; ++i) {
        const double s = double(op.scale * S[o + i]), z = double(noise_[o + i]);
        s2 += s * s;
        z2 += z * z;
      }
      const double ratio = op.snr * std::sqrt(z2) / std::max(std::sqrt(s2), 1e-30);
      const double step = 2.0 * op.alpha * (ratio * ratio);
      const float step32 = float(step), sq32 = float(std::sqrt(2.0 * step));
      for (size_t i = 0; i < e; ++i) {
        const float s = op.scale * S[o + i];
        const float a = x[o + i] + step32 * s;
        const float c = sq32 * noise_[o + i];
        x[o + i] = a + c;
      }
    }
  }

  const RunRequest &req_;
  const Plan &plan_;
  RoleRunner &runner_;
  uint32_t first_, batch_;
  edgegen_stats &stats_;
  std::vector<std::vector<float>> regs_;
  std::vector<float> scratch_, noise_, x2_, out2_;
  uint32_t draws_ = 0;
};

}  // namespace

void run_plan(const RunRequest &req, RoleRunner &runner, float *out, edgegen_stats &stats) {
  const Plan &plan = *req.plan;
  check_plan_fits_role(plan, runner);
  if (req.inputs.size() != plan.inputs.size())
    fail(EDGEGEN_ERR_INVALID_ARGUMENT, "the plan takes " + std::to_string(plan.inputs.size()) + " input registers (image-to-image, "
                                       "inpainting) but " + std::to_string(req.inputs.size()) + " were given");
  for (const float *p : req.inputs)
    if (!p) fail(EDGEGEN_ERR_INVALID_ARGUMENT, "a plan input register is NULL");
  if (req.preview && (plan.preview < 0 || !req.progress || req.preview_every == 0))
    fail(EDGEGEN_ERR_UNSUPPORTED, "this plan names no x0 prediction register: it has no preview");
  const size_t oe = plan.elems[plan.output];
  if (req.progress) {
    const uint64_t batches = (uint64_t(req.n) + req.batch_size - 1) / req.batch_size;
    req.progress->total = batches * plan.steps.size();
    req.progress->done = 0;
  }
  for (uint32_t start = 0; start < req.n; start += req.batch_size) {
    const uint32_t b = std::min(req.batch_size, req.n - start);
    BatchRun run(req, runner, start, b, stats);
    const std::vector<float> &x = run.run();
    std::memcpy(out + size_t(start) * oe, x.data(), size_t(b) * oe * sizeof(float));
  }
}

}  // namespace edgegen
