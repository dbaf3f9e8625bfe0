// One bundle sampled in the page: labels -> the plan (plan.js) over the generator role on
// onnxruntime-web -> optional decoder role, the steps of runtimes/pipeline.py for plan bundles.

import { BundleError, checkSupported, fetchFile, fetchManifest, onnxEntry } from './bundle.js';
import { checkPlan, runPlan } from './plan.js';

export const BATCH_SIZE = 64; // as Python's default: noise depends on the sample index, not the batch

const prod = (dims) => dims.reduce((a, b) => a * b, 1);

/** One role as an onnxruntime-web session, fed by the names in the manifest's role spec. */
class RoleSession {
  constructor(ort, session, spec) {
    this.ort = ort;
    this.session = session;
    this.spec = spec;
    this.meta = spec.meta || {};
    this.seconds = 0;
    this.calls = 0;
  }

  static async open(ort, base, manifest, role, providers) {
    const bytes = await fetchFile(base, onnxEntry(manifest, role));
    const session = await ort.InferenceSession.create(bytes, { executionProviders: providers, graphOptimizationLevel: 'all' });
    return new RoleSession(ort, session, manifest.roles[role]);
  }

  labelTensor(name, dtype, labels) {
    if (dtype === 'int64') return new this.ort.Tensor('int64', BigInt64Array.from(labels, (v) => BigInt(v)), [labels.length]);
    if (dtype === 'int32') return new this.ort.Tensor('int32', Int32Array.from(labels), [labels.length]);
    return new this.ort.Tensor('float32', Float32Array.from(labels), [labels.length]);
  }

  /** The network on x (batch, ...dims) at time t with labels: the role's first output, flat. */
  async call(x, dims, t, labels, batch, outputName = null) {
    const feeds = {};
    for (const inp of this.spec.inputs) {
      if (inp.name === this.meta.time_input) {
        if (t === null || t === undefined) throw new BundleError(`role input '${inp.name}' needs a time but the plan step has none`);
        feeds[inp.name] = new this.ort.Tensor('float32', new Float32Array(batch).fill(t), [batch]);
      } else if (inp.name === this.meta.label_input) {
        feeds[inp.name] = this.labelTensor(inp.name, inp.dtype, labels);
      } else if (inp.name === this.meta.context_input) {
        throw new BundleError(`role input '${inp.name}' is a text context: the page does not run text encoders yet`);
      } else {
        feeds[inp.name] = new this.ort.Tensor('float32', x, [batch, ...dims]);
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
}

export class WebPipeline {
  constructor(manifest, base, generator, decoder, backend) {
    this.manifest = manifest;
    this.base = base;
    this.generatorRole = generator;
    this.decoderRole = decoder;
    this.backend = backend;
  }

  /** Fetch and check the manifest, then open the ONNX sessions (providers: onnxruntime-web EPs). */
  static async open(ort, base, providers = ['wasm']) {
    const manifest = await fetchManifest(base);
    checkSupported(manifest);
    for (const [key, plan] of Object.entries(manifest.plans)) checkPlan(plan, `plan '${key}'`);
    const p = manifest.pipeline;
    const gen = await RoleSession.open(ort, base, manifest, p.generator.role, providers);
    const dec = p.decoder ? await RoleSession.open(ort, base, manifest, p.decoder.role, providers) : null;
    return new WebPipeline(manifest, base, gen, dec, providers[0]);
  }

  get generator() { return this.manifest.pipeline.generator; }
  get numClasses() { return (this.manifest.data.num_classes) || 0; }
  get nullLabel() { return this.manifest.data.null_label ?? null; }
  get plans() { return Object.keys(this.manifest.plans); }
  get shape() { return this.generator.latent_shape || this.manifest.data.shape; }
  get range() { return this.manifest.data.range || [-1, 1]; }

  /** The stored plan matching the bundle's default sampler and steps, else the first one. */
  get defaultPlan() {
    const d = this.generator.defaults || {};
    const keys = this.plans;
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
   * n samples for the seed: {samples: Float32Array (n, ...dims), dims, seconds, networkSeconds, calls}.
   * onStep(done, total) is awaited after every network step (the progress bar).
   */
  async sample({ n, seed = 0, label = null, plan = null, guidance = null, onStep = null }) {
    if (!Number.isInteger(n) || n <= 0 || n > 4096) throw new BundleError(`n must be an integer in 1..4096, got ${n}`);
    const s = BigInt(seed);
    if (s < 0n || s >= 2n ** 64n) throw new BundleError(`seed must be in [0, 2**64), got ${seed}`);
    const key = plan || this.defaultPlan;
    const p = this.manifest.plans[key];
    if (!p) throw new BundleError(`the bundle stores no plan '${key}' (it has: ${this.plans.join(', ')})`);
    const w = guidance ?? (this.generator.defaults || {}).guidance ?? 1.0;
    const nullLabel = this.numClasses > 0 ? this.nullLabel : null;
    const labels = this.labels(n, label);
    const outDims = (p.shapes || {})[p.output] || this.shape;
    const per = prod(outDims);
    const out = new Float32Array(n * per);
    const total = Math.ceil(n / BATCH_SIZE) * p.steps.length;
    this.generatorRole.seconds = 0; this.generatorRole.calls = 0;
    const t0 = performance.now();
    const net = (x, dims, t, y, b) => this.generatorRole.call(x, dims, t, y, b);
    for (let start = 0; start < n; start += BATCH_SIZE) {
      const stop = Math.min(n, start + BATCH_SIZE);
      const done0 = (start / BATCH_SIZE) * p.steps.length;
      const x = await runPlan(p, net, {
        shape: this.shape, labels: labels.slice(start, stop), seed: s, firstSample: start, guidance: w, nullLabel,
        onStep: onStep ? (d) => onStep(done0 + d, total) : null,
      });
      out.set(x, start * per);
    }
    let samples = out, dims = outDims;
    const dec = this.manifest.pipeline.decoder;
    if (dec) { // codes or latents -> images (stages.RoleStage): the decoder gets z / scale
      const z = dec.scale != null ? out.map((v) => v * Math.fround(1.0 / dec.scale)) : out;
      const spec = this.manifest.roles[dec.role].outputs.find((o) => o.name === (dec.output || 'x'));
      dims = spec.shape.slice(1);
      const chunks = [];
      for (let start = 0; start < n; start += BATCH_SIZE) {
        const stop = Math.min(n, start + BATCH_SIZE);
        chunks.push(await this.decoderRole.call(z.subarray(start * per, stop * per), outDims, null, [], stop - start, dec.output || 'x'));
      }
      samples = new Float32Array(n * prod(dims));
      chunks.forEach((c, i) => samples.set(c, i * BATCH_SIZE * prod(dims)));
    }
    const seconds = (performance.now() - t0) / 1000;
    return { samples, dims, plan: key, labels, seconds, networkSeconds: this.generatorRole.seconds, calls: this.generatorRole.calls };
  }
}
