#include "png_grid.hpp"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

namespace edgegen_tools {

std::string write_png_grid(const std::string &path, const float *x, int64_t n, int64_t c, int64_t h, int64_t w,
                           double lo, double hi, int64_t nrow, int scale, int pad) {
  if (c != 1 && c != 3) return "can only write 1- or 3-channel images as PNG, got " + std::to_string(c) + " channels";
  if (nrow <= 0) nrow = int64_t(std::ceil(std::sqrt(double(n))));
  const int64_t rows = (n + nrow - 1) / nrow;
  const int64_t gh = rows * (h + pad) + pad, gw = nrow * (w + pad) + pad;
  std::vector<uint8_t> canvas(size_t(gh * gw * c), 40);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = i / nrow, k = i % nrow;
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t yy = 0; yy < h; ++yy)
        for (int64_t xx = 0; xx < w; ++xx) {
          const double v = std::min(std::max(double(x[((i * c + ch) * h + yy) * w + xx]), lo), hi);
          const int64_t gy = pad + r * (h + pad) + yy, gx = pad + k * (w + pad) + xx;
          canvas[size_t((gy * gw + gx) * c + ch)] = uint8_t((v - lo) / (hi - lo) * 255.0 + 0.5);
        }
  }
  std::vector<uint8_t> row(size_t(gw * scale * c));  // before setjmp: a longjmp must not skip a destructor
  const std::string tmp = path + ".tmp";
  FILE *volatile f = std::fopen(tmp.c_str(), "wb");  // volatile: read after a longjmp
  if (!f) return "cannot write " + path;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    std::fclose(f);
    std::remove(tmp.c_str());
    return "libpng failed writing " + path;
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, png_uint_32(gw * scale), png_uint_32(gh * scale), 8,
               c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int64_t gy = 0; gy < gh * scale; ++gy) {  // nearest-neighbour upscale
    const uint8_t *src = &canvas[size_t((gy / scale) * gw * c)];
    for (int64_t gx = 0; gx < gw * scale; ++gx)
      for (int64_t ch = 0; ch < c; ++ch) row[size_t(gx * c + ch)] = src[(gx / scale) * c + ch];
    png_write_row(png, row.data());
  }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  if (std::fclose(f) != 0 || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return "cannot write " + path;
  }
  return "";
}

}  // namespace edgegen_tools
