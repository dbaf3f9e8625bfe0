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

std::string read_png(const std::string &path, std::vector<uint8_t> &pixels, int64_t &h, int64_t &w, int64_t &channels) {
  FILE *f = std::fopen(path.c_str(), "rb");
  if (!f) return "cannot read " + path;
  unsigned char sig[8] = {0};
  if (std::fread(sig, 1, 8, f) != 8 || png_sig_cmp(sig, 0, 8) != 0) {
    std::fclose(f);
    return path + " is not a PNG file";
  }
  std::vector<png_bytep> rows;  // before setjmp: a longjmp must not skip a destructor
  std::string err;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info || setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    std::fclose(f);
    return "libpng failed reading " + path + " (a corrupt PNG?)";
  }
  png_init_io(png, f);
  png_set_sig_bytes(png, 8);
  png_read_info(png, info);
  const png_uint_32 width = png_get_image_width(png, info), height = png_get_image_height(png, info);
  const int type = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
  if (type == PNG_COLOR_TYPE_GRAY) channels = 1;
  else if (type == PNG_COLOR_TYPE_RGB) channels = 3;
  else err = path + " must be a greyscale or RGB PNG without alpha or palette";
  if (err.empty() && depth == 16) err = path + " has 16-bit samples; use an 8-bit PNG";
  if (err.empty() && (width == 0 || height == 0 || width > 16384 || height > 16384)) err = path + " has a bad size";
  if (!err.empty()) {
    png_destroy_read_struct(&png, &info, nullptr);
    std::fclose(f);
    return err;
  }
  if (type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  png_read_update_info(png, info);
  h = int64_t(height);
  w = int64_t(width);
  pixels.assign(size_t(h * w * channels), 0);
  rows.resize(size_t(h));
  for (int64_t y = 0; y < h; ++y) rows[size_t(y)] = pixels.data() + size_t(y * w * channels);
  png_read_image(png, rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  std::fclose(f);
  return "";
}

}  // namespace edgegen_tools
