// The page: open the bundle (?bundle=URL, default bundle/ beside the page, as `edgegen serve-web`
// serves it), fill the controls, generate on click. ?ep=wasm|webgpu|auto picks onnxruntime-web's
// execution provider (auto: WebGPU when the browser has an adapter, else wasm).
// Tests read window.edgegen: {state: 'loading'|'ready'|'running'|'done'|'error', error, last, generate}.

import { drawGrid } from './grid.js';
import { decodeImage, halfMask, imageToMask, imageToSample } from './image.js';
import { WebPipeline } from './pipeline.js';

const $ = (id) => document.getElementById(id);
// initImage: {name, values} once an init image is chosen; maskFile: {name, values} for "from a file"
const api = { state: 'loading', error: null, last: null, pipeline: null, initImage: null, maskFile: null };
window.edgegen = api;

function fail(err) {
  const msg = (err && err.message) || String(err);
  api.state = 'error';
  api.error = msg;
  $('error').textContent = msg;
  $('error').hidden = false;
  $('status').textContent = '';
  $('generate').disabled = !api.pipeline;
}
window.addEventListener('unhandledrejection', (e) => fail(e.reason));
window.addEventListener('error', (e) => fail(e.error || e.message));

// wasm only: ort.wasm.min.mjs (the plain wasm build, half the size to compile); with WebGPU:
// ort.min.mjs (its JSEP build runs both execution providers).
async function loadOrt(providers) {
  const dist = new URL('../node_modules/onnxruntime-web/dist/', import.meta.url).href;
  let ort;
  try {
    ort = await import(`${dist}${providers.includes('webgpu') ? 'ort.min.mjs' : 'ort.wasm.min.mjs'}`);
  } catch (e) {
    throw new Error('onnxruntime-web is not installed beside the page (web/node_modules): run `make web-deps`');
  }
  ort.env.wasm.wasmPaths = dist;
  if (!self.crossOriginIsolated) ort.env.wasm.numThreads = 1; // threads need COOP/COEP headers
  return ort;
}

async function chooseProviders(ep) {
  if (ep === 'wasm') return ['wasm'];
  const adapter = navigator.gpu ? await navigator.gpu.requestAdapter().catch(() => null) : null;
  if (ep === 'webgpu' && !adapter) throw new Error('this browser has no WebGPU adapter: open the page with ?ep=wasm');
  return adapter ? ['webgpu', 'wasm'] : ['wasm'];
}

function fillControls(pipe) {
  const m = pipe.manifest;
  const k = pipe.numClasses;
  const label = $('label');
  for (let y = 0; y < k; y++) label.add(new Option(pipe.labelName(y), String(y)));
  $('prompt-box').hidden = !pipe.takesPrompt;
  label.disabled = k === 0;
  const plan = $('plan');
  for (const key of pipe.basePlans) { // edited plans are chosen by the strength and mask controls
    const p = m.plans[key];
    plan.add(new Option(`${p.sampler}, ${p.steps.length} network calls (${key})`, key, false, key === pipe.defaultPlan));
  }
  $('bundle-info').textContent = `${m.family} bundle, ${m.data.shape.join('×')} samples, ` +
    `${pipe.takesPrompt ? 'prompts' : k > 0 ? `${k} classes` : 'unconditional'}, onnxruntime-web on ${pipe.backend}`;
  $('edit-box').hidden = !pipe.takesImage;
  fillStrengths();
}

// -- image to image, inpainting: the stored edit plans of the chosen steps -------------------------
const ALL_STEPS = 'all';

/** The strengths the bundle stores for the chosen plan (and "all steps" for stored inpainting). */
function fillStrengths() {
  const pipe = api.pipeline, sel = $('strength'), before = sel.value;
  sel.length = 0;
  const edits = pipe.edits($('plan').value);
  const strengths = [...new Set(edits.filter((e) => e.strength !== null).map((e) => e.strength))].sort((a, b) => a - b);
  for (const st of strengths) sel.add(new Option(String(st), String(st)));
  if (edits.some((e) => e.strength === null)) sel.add(new Option('all steps (inpainting)', ALL_STEPS));
  if ([...sel.options].some((o) => o.value === before)) sel.value = before;
  const usable = !!api.initImage && sel.length > 0;
  sel.disabled = !usable;
  $('mask').disabled = !api.initImage;
  $('clear-image').disabled = !api.initImage;
}

async function chooseInitImage(file) {
  const pipe = api.pipeline;
  api.initImage = null;
  try {
    const img = await decodeImage(file, 'init image');
    api.initImage = { name: img.name, values: imageToSample(img, pipe.sampleShape, pipe.range) };
    drawGrid($('init-preview'), api.initImage.values, 1, pipe.sampleShape, pipe.range);
    $('error').hidden = true;
    if (api.state === 'error') api.state = 'ready';
    $('status').textContent = `init image ${img.name}`;
  } catch (e) {
    $('init-image').value = '';
    clearPreview();
    fail(e);
  } finally {
    fillStrengths();
  }
}

async function chooseMaskFile(file) {
  const [, h, w] = api.pipeline.sampleShape;
  api.maskFile = null;
  try {
    const img = await decodeImage(file, 'mask');
    api.maskFile = { name: img.name, values: imageToMask(img, h, w) };
    $('error').hidden = true;
    if (api.state === 'error') api.state = 'ready';
  } catch (e) {
    $('mask-file').value = '';
    fail(e);
  }
}

function clearPreview() {
  const c = $('init-preview');
  c.width = 0; c.height = 0;
}

function clearInitImage() {
  api.initImage = null;
  $('init-image').value = '';
  clearPreview();
  fillStrengths();
}

/** The mask the controls ask for: null (image to image), a half, or the mask file. */
function chosenMask() {
  const kind = $('mask').value;
  if (kind === 'none') return null;
  const [, h, w] = api.pipeline.sampleShape;
  if (kind !== 'file') return { name: `${kind} half`, values: halfMask(kind, h, w) };
  if (!api.maskFile) throw new Error('choose a mask file (black: keep, white: generate), or another mask');
  return api.maskFile;
}

async function generate(opts) {
  const pipe = api.pipeline;
  api.state = 'running';
  api.error = null;
  $('error').hidden = true;
  $('generate').disabled = true;
  $('progress').value = 0;
  try {
    const res = await pipe.sample({
      ...opts,
      onStep: async (done, total) => {
        $('progress').value = done / total;
        $('status').textContent = `step ${done} of ${total}`;
        await new Promise((r) => setTimeout(r, 0)); // let the page repaint
      },
    });
    drawGrid($('grid'), res.samples, opts.n, res.dims, pipe.range);
    $('status').textContent = `${opts.n} samples, plan ${res.plan}, seed ${opts.seed}` +
      (opts.prompt ? `, prompt "${opts.prompt}"` : '') + (opts.describeEdit ? `, ${opts.describeEdit}` : '');
    $('latency').textContent = `${(res.seconds * 1000).toFixed(0)} ms in all, ` +
      `${(res.networkSeconds * 1000).toFixed(0)} ms in ${res.calls} network calls ` +
      `(${(res.networkSeconds * 1000 / Math.max(res.calls, 1)).toFixed(1)} ms each), ${pipe.backend}`;
    api.last = res;
    api.state = 'done';
    return res;
  } catch (e) {
    fail(e);
    throw e;
  } finally {
    $('generate').disabled = false;
  }
}

function readControls() {
  const n = Number($('n').value);
  const seed = $('seed').value.trim();
  if (!/^\d+$/.test(seed)) throw new Error(`seed must be a whole number in [0, 2**64), got '${seed}'`);
  const prompt = $('prompt').value.trim() ? $('prompt').value : null; // a prompt replaces the labels' prompts
  const label = prompt || $('label').value === '' ? null : Number($('label').value);
  const opts = { n, seed: BigInt(seed), label, prompt, plan: $('plan').value };
  if (api.initImage) { // a stored edit plan of the chosen steps (the page never compiles one)
    const mask = chosenMask();
    const sv = $('strength').value;
    if (!sv) throw new Error(`this bundle stores no image-to-image plan for '${opts.plan}': choose other steps`);
    const strength = sv === ALL_STEPS ? null : Number(sv);
    opts.plan = api.pipeline.editPlan(opts.plan, strength, mask !== null);
    opts.image = api.initImage.values;
    opts.mask = mask && mask.values;
    opts.describeEdit = `init image ${api.initImage.name}` + (strength !== null ? `, strength ${strength}` : '') +
      (mask ? `, mask ${mask.name}` : '');
  }
  return opts;
}

async function main() {
  const params = new URLSearchParams(location.search);
  const base = new URL(params.get('bundle') || 'bundle/', location.href);
  const providers = await chooseProviders(params.get('ep') || 'auto');
  api.pipeline = await WebPipeline.open(await loadOrt(providers), base, providers);
  fillControls(api.pipeline);
  api.generate = generate;
  $('plan').addEventListener('change', fillStrengths);
  $('init-image').addEventListener('change', (e) => { if (e.target.files[0]) chooseInitImage(e.target.files[0]); else clearInitImage(); });
  $('clear-image').addEventListener('click', clearInitImage);
  $('mask').addEventListener('change', () => {
    $('mask-file-box').hidden = $('mask').value !== 'file';
    const sel = $('strength'), inpaint = $('mask').value !== 'none';
    const hasAll = [...sel.options].some((o) => o.value === ALL_STEPS);
    if (inpaint && hasAll) sel.value = ALL_STEPS; // the stored inpainting plan runs every step
    else if (!inpaint && sel.value === ALL_STEPS && sel.options.length) sel.value = sel.options[0].value;
  });
  $('mask-file').addEventListener('change', (e) => { if (e.target.files[0]) chooseMaskFile(e.target.files[0]); });
  $('generate').disabled = false;
  $('generate').addEventListener('click', () => {
    let opts;
    try { opts = readControls(); } catch (e) { fail(e); return; }
    generate(opts).catch(() => {}); // shown by fail()
  });
  api.state = 'ready';
  $('status').textContent = 'ready';
}

main().catch(fail);
