// Tiles (n, C, H, W) float samples into one PNG (libpng), the layout edgegen/images.py uses:
// `nrow` per row, 1-pixel gray padding, upscaled `scale` times. Written atomically.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace edgegen_tools {

// Returns an empty string on success, else a one-line error.
std::string write_png_grid(const std::string &path, const float *samples, int64_t n, int64_t c, int64_t h, int64_t w,
                           double lo, double hi, int64_t nrow, int scale = 4, int pad = 1);

// Reads an 8-bit greyscale (1 channel; 1, 2 and 4-bit greys are expanded) or RGB (3) PNG into
// pixels (H x W x channels, row-major). Returns an empty string on success, else a one-line error.
std::string read_png(const std::string &path, std::vector<uint8_t> &pixels, int64_t &h, int64_t &w, int64_t &channels);

}  // namespace edgegen_tools
