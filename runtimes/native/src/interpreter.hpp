// The C++ plan interpreter: executes exactly what runtimes/interpreter.py executes
// (float32 arithmetic, affine terms summed left to right, one Philox draw per noisy op,
// sample i of a request gets the noise of global sample index i).
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "edgegen.h"
#include "network.hpp"
#include "plan.hpp"

namespace edgegen {

// Maps the interpreter's (x, t, y) onto a role's named inputs, using the manifest's
// meta.time_input / meta.label_input / meta.context_input; converts t and y to the dtypes the
// role declares, feeds a context model's context input row table[y] (y = -1: the last row, the
// null context; executors.py InterpreterExecutor.net), and times every call.
class RoleRunner {
 public:
  RoleRunner(const RoleSpec &role, Network &net);
  bool has_time() const { return t_idx_ >= 0; }
  bool has_label() const { return y_idx_ >= 0; }
  bool has_context() const { return c_idx_ >= 0; }
  size_t x_elems() const { return x_elems_; }
  size_t out_elems() const { return out_elems_; }
  size_t context_elems() const { return c_elems_; }  // per sample (L x D); 0 without a context input
  // The context table of the running request: rows x context_elems() floats, the last row the
  // null context (nullptr: none; a context model then refuses to run).
  void set_context(const float *table, size_t rows) {
    table_ = table;
    table_rows_ = rows;
  }
  // x: batch * x_elems(); y: batch labels (ignored without a label input); out: batch * out_elems().
  void call(int64_t batch, const float *x, std::optional<float> t, const int64_t *y, float *out, edgegen_stats &stats);

 private:
  const RoleSpec &role_;
  Network &net_;
  int x_idx_ = -1, t_idx_ = -1, y_idx_ = -1, c_idx_ = -1;
  size_t x_elems_ = 0, out_elems_ = 0, c_elems_ = 0;
  const float *table_ = nullptr;
  size_t table_rows_ = 0;
  std::vector<unsigned char> t_buf_, y_buf_;
  std::vector<float> c_buf_;
};

// Progress and cancellation: step() after every network step (across batches), check() before.
// Throws Error(EDGEGEN_ERR_CANCELLED) when the callback returns non-zero or the bundle's cancel
// counter moved since the call started.
struct Progress {
  edgegen_progress_fn fn = nullptr;
  void *user = nullptr;
  const std::atomic<uint64_t> *cancel = nullptr;  // the bundle's edgegen_cancel counter
  uint64_t cancel_seen = 0;                        // its value when the call started
  uint64_t done = 0, total = 0;
  void check() const;
  void step();
};

struct RunRequest {
  const Plan *plan;
  const int64_t *labels;  // n
  uint32_t n;
  uint64_t seed;
  uint32_t batch_size;
  double guidance;                   // 1 = no guidance
  std::optional<int64_t> null_label;  // guidance needs one (context models: -1, the null context)
  Progress *progress = nullptr;       // optional
  // The plan's input registers (plan.inputs: image-to-image x_init, inpainting mask), in the
  // plan's order, each n * plan.elems[register] floats (sample i at i * elems).
  std::vector<const float *> inputs;
  // Preview (ABI 5): after every preview_every-th step (progress's count, which it needs), before
  // that step's progress callback: the batch's plan.preview register (x0, batch * its elems floats).
  // The caller decodes it and may throw (Error(CANCELLED) to stop). Empty: no preview.
  std::function<void(uint64_t done, uint64_t total, const float *x0, uint32_t batch)> preview;
  uint32_t preview_every = 1;
};

// Checks the plan against the role (shapes, time input); Error(MALFORMED) otherwise.
void check_plan_fits_role(const Plan &plan, const RoleRunner &runner);

// Runs the whole plan in batches; out: n * plan.elems[plan.output] floats.
void run_plan(const RunRequest &req, RoleRunner &runner, float *out, edgegen_stats &stats);

}  // namespace edgegen
