// Tiles (n, C, H, W) float samples into one PNG (libpng), the layout edgegen/images.py uses:
// `nrow` per row, 1-pixel gray padding, upscaled `scale` times. Written atomically.
#pragma once
#include <cstdint>
#include <string>

namespace edgegen_tools {

// Returns an empty string on success, else a one-line error.
std::string write_png_grid(const std::string &path, const float *samples, int64_t n, int64_t c, int64_t h, int64_t w,
                           double lo, double hi, int64_t nrow, int scale = 4, int pad = 1);

}  // namespace edgegen_tools
