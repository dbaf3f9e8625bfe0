// Samples -> pixels on a canvas, as edgegen/images.py's grid: (x - lo) / (hi - lo) clipped,
// 255 x + 0.5 truncated, tiles of `pad` pixels (grey 40) in rows of ceil(sqrt(n)), upscaled.

export function drawGrid(canvas, samples, n, dims, range = [-1, 1], scale = 4, pad = 1) {
  const ctx = canvas.getContext('2d');
  if (dims.length !== 3) return drawPoints(canvas, samples, n, dims);
  const [c, h, w] = dims;
  const nrow = Math.ceil(Math.sqrt(n));
  const rows = Math.ceil(n / nrow);
  const W = nrow * (w + pad) + pad, H = rows * (h + pad) + pad;
  const img = new ImageData(W, H);
  img.data.fill(40);
  for (let i = 3; i < img.data.length; i += 4) img.data[i] = 255;
  const [lo, hi] = range;
  const per = c * h * w;
  for (let k = 0; k < n; k++) {
    const r = Math.floor(k / nrow), col = k % nrow;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const px = ((pad + r * (h + pad) + y) * W + pad + col * (w + pad) + x) * 4;
        for (let ch = 0; ch < 3; ch++) {
          const v = samples[k * per + (c === 1 ? 0 : ch) * h * w + y * w + x];
          const u = (Math.min(Math.max(v, lo), hi) - lo) / (hi - lo);
          img.data[px + ch] = Math.floor(u * 255 + 0.5);
        }
      }
    }
  }
  canvas.width = W * scale;
  canvas.height = H * scale;
  const tmp = new OffscreenCanvas(W, H);
  tmp.getContext('2d').putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(tmp, 0, 0, W * scale, H * scale);
}

// Samples that are not images (the two-moons point sets): the first two coordinates as dots.
function drawPoints(canvas, samples, n, dims) {
  const per = dims.reduce((a, b) => a * b, 1);
  canvas.width = 320; canvas.height = 320;
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#282828'; ctx.fillRect(0, 0, 320, 320);
  ctx.fillStyle = '#e8e8e8';
  for (let k = 0; k < n; k++) {
    const x = samples[k * per], y = per > 1 ? samples[k * per + 1] : 0;
    ctx.fillRect(160 + x * 50 - 1.5, 160 - y * 50 - 1.5, 3, 3);
  }
}
