// One bundle sampled in the page, the steps of runtimes/pipeline.py for plan bundles:
// condition (labels, or prompts -> tokenizer -> text encoder role) -> the plan (plan.js) over the
// generator role on onnxruntime-web -> optional decoder role.

import { BundleError, checkSupported, fetchFile, fetchManifest, onnxEntry, sideEntry } from './bundle.js';
import { checkPlan, planEdit, runPlan } from './plan.js';
import { PromptTokenizer } from './text.js';

export const BATCH_SIZE = 64; // as Python's default: noise depends on the sample index, not the batch

const prod = (dims) => dims.reduce((a, b) => a * b, 1);

/** One role as an onnxruntime-web session, fed by the names in the manifest's role spec. */
class RoleSession {
  constructor(ort, session, name, spec) {
    this.ort = ort;
    this.session = session;
    this.name = name;
    this.spec = spec;
    this.meta = spec.meta || {};
    this.table = null; // text contexts of the running request: rows of contextRow floats, the null context last
    this.seconds = 0;
    this.calls = 0;
  }

  static async open(ort, base, manifest, role, providers) {
    const bytes = await fetchFile(base, onnxEntry(manifest, role));
    const session = await ort.InferenceSession.create(bytes, { executionProviders: providers, graphOptimizationLevel: 'all' });
    return new RoleSession(ort, session, role, manifest.roles[role]);
  }

  tensor(dtype, values, dims) {
    if (dtype === 'int64') return new this.ort.Tensor('int64', BigInt64Array.from(values, (v) => BigInt(v)), dims);
    if (dtype === 'int32') return new this.ort.Tensor('int32', Int32Array.from(values), dims);
    return new this.ort.Tensor('float32', values instanceof Float32Array ? values : Float32Array.from(values), dims);
  }

  /** context[y] per sample (executors.InterpreterExecutor.net): y = -1 is the null context, the last row. */
  contexts(inp, labels) {
    if (!this.table) throw new BundleError(`role '${this.name}' needs a text context: give a prompt`);
    const row = prod(inp.shape.slice(1)), rows = this.table.length / row;
    const out = new Float32Array(labels.length * row);
    labels.forEach((y, i) => out.set(this.table.subarray((y < 0 ? rows + y : y) * row, (y < 0 ? rows + y + 1 : y + 1) * row), i * row));
    return this.tensor('float32', out, [labels.length, ...inp.shape.slice(1)]);
  }

  /** The network on x (batch, ...dims) at time t with labels: the named (default: first) output, flat. */
  async call(x, dims, t, labels, batch, outputName = null) {
    const feeds = {};
    for (const inp of this.spec.inputs) {
      if (inp.name === this.meta.time_input) {
        if (t === null || t === undefined) throw new BundleError(`the plan calls role '${this.name}' without a time, but it needs one`);
        feeds[inp.name] = this.tensor('float32', new Float32Array(batch).fill(t), [batch]);
      } else if (inp.name === this.meta.label_input) {
        feeds[inp.name] = this.tensor(inp.dtype, labels, [batch]);
      } else if (inp.name === this.meta.context_input) {
        feeds[inp.name] = this.contexts(inp, labels);
      } else {
        feeds[inp.name] = this.tensor(inp.dtype, x, [batch, ...dims]);
      }
    }
    const name = outputName || this.spec.outputs[0].name;
    const t0 = performance.now();
    const out = await this.session.run(feeds, [name]);
    this.seconds += (performance.now() - t0) / 1000;
    this.calls += 1;
    const data = out[name].data;
    return data instanceof Float32Array ? data : Float32Array.from(data);
  }

  /** A role run once over n items in batches (stages.RoleStage): x (n, ...dims) -> (n, ...output dims). */
  async map(x, dims, n, outputName) {
    const per = prod(dims), chunks = [];
    for (let start = 0; start < n; start += BATCH_SIZE) {
      const stop = Math.min(n, start + BATCH_SIZE);
      chunks.push(await this.call(x.subarray(start * per, stop * per), dims, null, [], stop - start, outputName));
    }
    const out = new Float32Array(chunks.reduce((a, c) => a + c.length, 0));
    let at = 0;
    for (const c of chunks) { out.set(c, at); at += c.length; }
    return out;
  }
}

const sortKeys = (o) => Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

/**
 * Latent inpainting (pipeline.Pipeline.sample): after decoding, the input's unmasked pixels are
 * pasted back, keep * out + (1 - keep) * image in float32, keep = 1 where generated.
 */
function paste(samples, keep, image) {
  const per = keep.length, out = new Float32Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const k = keep[i % per];
    out[i] = Math.fround(k * samples[i]) + Math.fround(Math.fround(1 - k) * image[i % per]);
  }
  return out;
}

export class WebPipeline {
  constructor(manifest, base, backend, roles, tokenizer) {
    this.manifest = manifest;
    this.base = base;
    this.backend = backend;
    this.roles = roles; // role name -> RoleSession
    this.tokenizer = tokenizer; // PromptTokenizer for prompt bundles, else null
  }

  /** Fetch and check the manifest, then open the ONNX sessions (providers: onnxruntime-web EPs). */
  static async open(ort, base, providers = ['wasm']) {
    const manifest = await fetchManifest(base);
    const names = checkSupported(manifest);
    for (const [key, plan] of Object.entries(manifest.plans)) checkPlan(plan, `plan '${key}'`);
    let tokenizer = null;
    const cond = manifest.pipeline.condition || {};
    if (cond.kind === 'prompt') {
      const bytes = await fetchFile(base, sideEntry(manifest, cond.tokenizer.file));
      tokenizer = new PromptTokenizer(JSON.parse(new TextDecoder().decode(bytes)), cond.tokenizer.text_length);
    }
    const roles = {};
    for (const name of names) roles[name] = await RoleSession.open(ort, base, manifest, name, providers);
    return new WebPipeline(manifest, base, providers[0], roles, tokenizer);
  }

  get generator() { return this.manifest.pipeline.generator; }
  get condition() { return this.manifest.pipeline.condition || { kind: 'none' }; }
  get takesPrompt() { return this.condition.kind === 'prompt'; }
  get numClasses() { return (this.manifest.data.num_classes) || 0; }
  get nullLabel() { return this.manifest.data.null_label ?? null; }
  get plans() { return Object.keys(this.manifest.plans); }
  /** The stored plans that start from noise (no input registers): the "steps" choices. */
  get basePlans() { return this.plans.filter((k) => !planEdit(this.manifest.plans[k])); }
  /** Image-to-image / inpainting apply: the bundle stores edited plans (plans.edit_plan). */
  get takesImage() { return this.plans.some((k) => planEdit(this.manifest.plans[k])); }
  get sampleShape() { return this.manifest.data.shape; }

  /** The stored edits of base plan ``key``: [{key, strength, inpaint}] (strength null: every step). */
  edits(key) {
    const base = this.manifest.plans[key];
    if (!base) return [];
    const same = (p) => {
      if (p.sampler !== base.sampler) return false;
      const params = { ...p.params };
      delete params.strength;
      delete params.inpaint;
      return JSON.stringify(sortKeys(params)) === JSON.stringify(sortKeys(base.params));
    };
    return this.plans.filter((k) => planEdit(this.manifest.plans[k]) && same(this.manifest.plans[k]))
      .map((k) => ({ key: k, ...planEdit(this.manifest.plans[k]) }));
  }

  /**
   * The stored plan that edits base plan ``key`` at ``strength`` (null: every step, inpainting only)
   * with or without a mask; a BundleError naming what is stored and how to store more otherwise.
   * The page never compiles a plan: strengths the bundle does not store are not offered.
   */
  editPlan(key, strength, inpaint) {
    const edits = this.edits(key);
    const hit = edits.find((e) => e.inpaint === inpaint && (e.strength ?? null) === (strength ?? null));
    if (hit) return hit.key;
    if (strength == null && !inpaint) throw new BundleError('image to image needs a strength: "all steps" is for inpainting (choose a mask)');
    const what = `${inpaint ? 'inpainting' : 'image-to-image'} plan${strength != null ? ` at strength ${strength}` : ''}`;
    const spec = `${key}${strength != null ? `@strength${strength}` : ''}${inpaint ? '@inpaint' : ''}`;
    throw new BundleError(`this bundle stores no ${what} for '${key}' (it stores: ${edits.map((e) => e.key).join(', ') || 'none'}); ` +
                          `store it with \`edgegen export RUN --plans ${spec}\``);
  }
  get shape() { return this.generator.latent_shape || this.manifest.data.shape; }
  get range() { return this.manifest.data.range || [-1, 1]; }

  /** What a label means: its stored prompt for prompt models, else the number. */
  labelName(y) {
    const prompts = this.condition.label_prompts;
    return this.takesPrompt && prompts && prompts[y] ? `${y}: ${prompts[y]}` : String(y);
  }

  /** The stored plan matching the bundle's default sampler and steps, else the first one. */
  get defaultPlan() {
    const d = this.generator.defaults || {};
    const keys = this.basePlans; // a plan that starts from noise (edited plans need an image)
    return keys.find((k) => this.manifest.plans[k].sampler === d.sampler && this.manifest.plans[k].params.steps === d.steps)
      || keys.find((k) => this.manifest.plans[k].sampler === d.sampler) || keys[0];
  }

  /** null: 0, 1, ..., k-1 repeated (the null label, or 0, if unconditional); a number: all that label. */
  labels(n, label = null) {
    const k = this.numClasses;
    if (label === null || label === undefined || label === '') {
      return Array.from({ length: n }, (_, i) => (k > 0 ? i % k : (this.nullLabel ?? 0)));
    }
    const y = Number(label);
    if (k === 0) throw new BundleError('this model is unconditional: it takes no label');
    if (!Number.isInteger(y) || y < 0 || y >= k) throw new BundleError(`label ${label} is out of range (this model has labels 0..${k - 1})`);
    return new Array(n).fill(y);
  }

  /**
   * stages.PromptCondition.prepare: the n prompts (the given one, else each label's stored prompt),
   * run through the text encoder once per distinct prompt plus the null prompt; each sample's label
   * becomes its prompt's row of that table. Returns the labels the generator sees.
   */
  async prepareContext(n, label, prompt) {
    const gen = this.roles[this.generator.role];
    gen.table = null;
    if (!this.takesPrompt) {
      if (prompt) throw new BundleError(this.numClasses ? 'this model is class-conditional: it takes a label, not a prompt' : 'this model takes no prompt');
      return { labels: this.labels(n, label), context: false };
    }
    if (prompt && label !== null && label !== undefined && label !== '') throw new BundleError('give a prompt or a label, not both');
    const prompts = prompt ? new Array(n).fill(prompt) : this.labels(n, label).map((y) => this.condition.label_prompts[y]);
    const distinct = [...new Set(prompts)];
    const tokens = distinct.flatMap((p) => this.tokenizer.encode(p));
    const nullPrompt = this.condition.null_prompt || '';
    const nullTokens = nullPrompt.trim() ? this.tokenizer.encode(nullPrompt) : new Array(this.tokenizer.textLength).fill(this.tokenizer.padId);
    const enc = this.condition.encoder;
    if (!enc) throw new BundleError('this prompt model has no text encoder role: the page runs prompt models with one');
    const rows = distinct.length + 1, L = this.tokenizer.textLength;
    const all = Int32Array.from([...tokens, ...nullTokens]);
    gen.table = await this.roles[enc.role].map(all, [L], rows, enc.output);
    return { labels: prompts.map((p) => distinct.indexOf(p)), context: true };
  }

  /**
   * n samples for the seed: {samples: Float32Array (n, ...dims), dims, seconds, networkSeconds, calls}.
   * onStep(done, total) is awaited after every network step (the progress bar).
   */
  /**
   * pipeline.Pipeline._edit_inputs for a stored edit plan: the plan's input registers (the image,
   * or its latents times the encoder stage's scale; the mask, max-pooled to the latent grid) and,
   * for latent inpainting, the pixel mask and image to paste back after decoding.
   * image: Float32Array (C*H*W) in the data range; mask: Float32Array (H*W) of 0/1 or null.
   */
  async editInputs(p, key, image, mask) {
    const shape = this.sampleShape, latent = this.shape;
    const [c, h, w] = shape;
    if (!image) throw new BundleError(`plan '${key}' edits an image: choose an init image`);
    if (image.length !== prod(shape)) {
      throw new BundleError(`the init image has ${image.length} values, this model takes ${shape.join('x')} (channels x height x width)`);
    }
    const [lo, hi] = this.range;
    for (let i = 0; i < image.length; i++) {
      if (!(image[i] >= lo && image[i] <= hi)) throw new BundleError(`the init image has values outside the data range [${lo}, ${hi}]`);
    }
    const inpaint = p.inputs.includes('mask');
    if (inpaint && !mask) throw new BundleError(`plan '${key}' inpaints: choose a mask`);
    if (!inpaint && mask) throw new BundleError(`plan '${key}' does not inpaint: choose an inpainting plan or no mask`);
    const isLatent = prod(latent) !== prod(shape) || latent.some((d, i) => d !== shape[i]);
    let xInit = image;
    if (isLatent) {
      const enc = this.manifest.pipeline.encoder;
      if (!enc || enc.scale == null || !this.roles[enc.role]) {
        throw new BundleError('this latent model has no image encoder stage: it cannot start from an image');
      }
      const z = await this.roles[enc.role].map(image, shape, 1, enc.output || 'z'); // one image, batch 1 (as Python)
      const s = Math.fround(enc.scale);
      xInit = new Float32Array(z.length);
      for (let i = 0; i < z.length; i++) xInit[i] = z[i] * s;
      if (xInit.length !== prod(latent)) throw new BundleError(`the image encoder returned ${xInit.length} values, the plan runs on ${latent.join('x')}`);
    }
    const out = { xInit, latentMask: null, pixelMask: null, image };
    if (inpaint) {
      if (mask.length !== h * w) throw new BundleError(`the mask has ${mask.length} values, it must be ${h}x${w} like the image`);
      for (let i = 0; i < mask.length; i++) {
        if (mask[i] !== 0 && mask[i] !== 1) throw new BundleError('the mask must be binary: 1 (white) where to generate, 0 (black) where to keep');
      }
      const [lc, lh, lw] = latent;
      const lm = new Float32Array(lc * lh * lw);
      if (isLatent) { // a latent cell is generated when any of its pixels is
        const fy = Math.floor(h / lh), fx = Math.floor(w / lw);
        for (let i = 0; i < lh; i++) {
          for (let j = 0; j < lw; j++) {
            let m = 0;
            for (let y = i * fy; y < (i + 1) * fy; y++) for (let x = j * fx; x < (j + 1) * fx; x++) m = Math.max(m, mask[y * w + x]);
            for (let ch = 0; ch < lc; ch++) lm[(ch * lh + i) * lw + j] = m;
          }
        }
        out.pixelMask = new Float32Array(c * h * w);
        for (let ch = 0; ch < c; ch++) out.pixelMask.set(mask, ch * h * w);
      } else {
        for (let ch = 0; ch < lc; ch++) lm.set(mask, ch * lh * lw);
      }
      out.latentMask = lm;
    }
    return out;
  }

  async sample({ n, seed = 0, label = null, prompt = null, plan = null, guidance = null, onStep = null, image = null, mask = null }) {
    if (!Number.isInteger(n) || n <= 0 || n > 4096) throw new BundleError(`n must be an integer in 1..4096, got ${n}`);
    const s = BigInt(seed);
    if (s < 0n || s >= 2n ** 64n) throw new BundleError(`seed must be in [0, 2**64), got ${seed}`);
    const key = plan || this.defaultPlan;
    const p = this.manifest.plans[key];
    if (!p) throw new BundleError(`the bundle stores no plan '${key}' (it has: ${this.plans.join(', ')})`);
    const w = guidance ?? (this.generator.defaults || {}).guidance ?? 1.0;
    const gen = this.roles[this.generator.role];
    Object.values(this.roles).forEach((r) => { r.seconds = 0; r.calls = 0; });
    const t0 = performance.now();
    if (!p.inputs && (image || mask)) throw new BundleError(`plan '${key}' starts from noise: choose a strength (image-to-image) or an inpainting plan for the init image`);
    const edit = p.inputs ? await this.editInputs(p, key, image, mask) : null;
    const { labels, context } = await this.prepareContext(n, label, prompt);
    const nullLabel = context ? -1 : this.numClasses > 0 ? this.nullLabel : null;
    const outDims = (p.shapes || {})[p.output] || this.shape;
    const per = prod(outDims);
    const out = new Float32Array(n * per);
    const total = Math.ceil(n / BATCH_SIZE) * p.steps.length;
    const net = (x, dims, t, y, b) => gen.call(x, dims, t, y, b);
    for (let start = 0; start < n; start += BATCH_SIZE) {
      const stop = Math.min(n, start + BATCH_SIZE);
      const done0 = (start / BATCH_SIZE) * p.steps.length;
      const x = await runPlan(p, net, {
        shape: this.shape, labels: labels.slice(start, stop), seed: s, firstSample: start, guidance: w, nullLabel,
        onStep: onStep ? (d) => onStep(done0 + d, total) : null,
        inputs: edit ? this.batchInputs(edit, stop - start) : null,
      });
      out.set(x, start * per);
    }
    let samples = out, dims = outDims;
    const dec = this.manifest.pipeline.decoder;
    if (dec) { // codes or latents -> images (stages.RoleStage): the decoder gets z / scale
      const z = dec.scale != null ? out.map((v) => v * Math.fround(1.0 / dec.scale)) : out;
      const spec = this.manifest.roles[dec.role].outputs.find((o) => o.name === (dec.output || 'x'));
      dims = spec.shape.slice(1);
      samples = await this.roles[dec.role].map(z, outDims, n, dec.output || 'x');
    }
    if (edit && edit.pixelMask) samples = paste(samples, edit.pixelMask, edit.image);
    const seconds = (performance.now() - t0) / 1000;
    return { samples, dims, plan: key, labels, seconds, networkSeconds: gen.seconds, calls: gen.calls };
  }

  /** The edit's input registers for a batch of b samples: the same image (and mask) for each. */
  batchInputs(edit, b) {
    const rep = (v) => {
      const out = new Float32Array(b * v.length);
      for (let i = 0; i < b; i++) out.set(v, i * v.length);
      return out;
    };
    const inputs = { x_init: rep(edit.xInit) };
    if (edit.latentMask) inputs.mask = rep(edit.latentMask);
    return inputs;
  }
}
