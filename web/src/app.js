// The page: open the bundle (?bundle=URL, default bundle/ beside the page, as `edgegen serve-web`
// serves it), fill the controls, generate on click. ?ep=wasm|webgpu|auto picks onnxruntime-web's
// execution provider (auto: WebGPU when the browser has an adapter, else wasm).
// Tests read window.edgegen: {state: 'loading'|'ready'|'running'|'done'|'error', error, last, generate}.

import { drawGrid } from './grid.js';
import { WebPipeline } from './pipeline.js';

const $ = (id) => document.getElementById(id);
const api = { state: 'loading', error: null, last: null, pipeline: null };
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
  for (const key of pipe.plans) {
    const p = m.plans[key];
    plan.add(new Option(`${p.sampler}, ${p.steps.length} network calls (${key})`, key, false, key === pipe.defaultPlan));
  }
  $('bundle-info').textContent = `${m.family} bundle, ${m.data.shape.join('×')} samples, ` +
    `${pipe.takesPrompt ? 'prompts' : k > 0 ? `${k} classes` : 'unconditional'}, onnxruntime-web on ${pipe.backend}`;
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
      (opts.prompt ? `, prompt "${opts.prompt}"` : '');
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
  return { n, seed: BigInt(seed), label, prompt, plan: $('plan').value };
}

async function main() {
  const params = new URLSearchParams(location.search);
  const base = new URL(params.get('bundle') || 'bundle/', location.href);
  const providers = await chooseProviders(params.get('ep') || 'auto');
  api.pipeline = await WebPipeline.open(await loadOrt(providers), base, providers);
  fillControls(api.pipeline);
  api.generate = generate;
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
