// Init images and masks for image-to-image and inpainting, as edgegen/images.py reads them
// (read_image, read_mask): the browser decodes the file (PNG, through an ImageBitmap drawn on a
// canvas), and the pixels become the model's (C, H, W) floats in its data range, or a 0/1 mask.
// A wrong size, colour where the model takes grey, or a mask that is not black and white is one
// ImageError naming the file; nothing is resized.

export class ImageError extends Error {}

/** A File/Blob -> {name, width, height, rgba: Uint8ClampedArray} (no colour-space conversion). */
export async function decodeImage(file, what = 'init image') {
  const name = file.name || what;
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch (e) {
    throw new ImageError(`cannot read the ${what} ${name}: the browser cannot decode it as an image`);
  }
  const { width, height } = bitmap;
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  return { name, width, height, rgba: ctx.getImageData(0, 0, width, height).data };
}

function isGrey(rgba) {
  for (let i = 0; i < rgba.length; i += 4) if (rgba[i] !== rgba[i + 1] || rgba[i] !== rgba[i + 2]) return false;
  return true;
}

function checkOpaque(img, what) {
  for (let i = 3; i < img.rgba.length; i += 4) {
    if (img.rgba[i] !== 255) throw new ImageError(`the ${what} ${img.name} has transparent pixels: use an opaque image`);
  }
}

/**
 * read_image: a decoded image -> Float32Array (C*H*W) in ``range`` for a model taking ``shape``
 * (C, H, W): lo + (hi - lo) * (v / 255), in float32 as numpy computes it.
 */
export function imageToSample(img, shape, range = [-1, 1]) {
  const [c, h, w] = shape;
  if (img.height !== h || img.width !== w) {
    throw new ImageError(`the init image ${img.name} is ${img.width}x${img.height}, this model takes ${w}x${h} images`);
  }
  checkOpaque(img, 'init image');
  if (c === 1 && !isGrey(img.rgba)) {
    throw new ImageError(`the init image ${img.name} has colour (RGB), this model takes 1 channel(s) (greyscale)`);
  }
  if (c !== 1 && c !== 3) throw new ImageError(`this model takes ${c} channels: the page reads greyscale and RGB images`);
  const f32 = Math.fround, [lo, hi] = range, span = f32(hi - lo), out = new Float32Array(c * h * w);
  for (let ch = 0; ch < c; ch++) {
    for (let p = 0; p < h * w; p++) {
      const a = f32(img.rgba[p * 4 + ch] / 255); // float32 division, as numpy's uint8 -> float32 / 255
      out[ch * h * w + p] = f32(lo) + f32(span * a);
    }
  }
  return out;
}

/** read_mask: a decoded black-and-white image -> Float32Array (H*W), 1 where white (generate). */
export function imageToMask(img, h, w) {
  if (img.height !== h || img.width !== w) {
    throw new ImageError(`the mask ${img.name} is ${img.width}x${img.height}, it must be ${w}x${h} like the image`);
  }
  checkOpaque(img, 'mask');
  if (!isGrey(img.rgba)) {
    throw new ImageError(`the mask ${img.name} must be a greyscale image of black (keep) and white (generate), got colour (RGB)`);
  }
  const out = new Float32Array(h * w);
  for (let p = 0; p < h * w; p++) {
    const v = img.rgba[p * 4];
    if (v !== 0 && v !== 255) throw new ImageError(`the mask ${img.name} is not binary: use only black (0, keep) and white (255, generate)`);
    out[p] = v === 255 ? 1 : 0;
  }
  return out;
}

/** A mask that generates half of the image: 'right' (columns w/2..), 'left', 'bottom' (rows h/2..). */
export function halfMask(kind, h, w) {
  const out = new Float32Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const on = kind === 'right' ? x >= Math.floor(w / 2) : kind === 'left' ? x < Math.floor(w / 2) : y >= Math.floor(h / 2);
      out[y * w + x] = on ? 1 : 0;
    }
  }
  return out;
}
