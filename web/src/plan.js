// The plan interpreter (format edgegen.plan/1, runtimes/plans.py), the JavaScript twin of
// runtimes/interpreter.py and runtimes/plan_ops.py. Every value is float32 (Float32Array,
// Math.fround) and every sum runs in the same order as numpy, so a sample equals Python's
// up to the network's own rounding. The network is an async callable
// net(x: Float32Array, dims: per-sample dims of x, t: number|null, labels: number[], batch) -> Float32Array.

import { gaussian, STREAM_NOISE } from './rng.js';

const f32 = Math.fround;

/** The ops this interpreter implements (plans.py lists them). */
export const KNOWN_OPS = ['affine', 'clip', 'langevin', 'blend'];

/** The input registers the page can fill (plans.edit_plan): the init image (or its latents) and the mask. */
export const KNOWN_INPUTS = ['x_init', 'mask'];

export class PlanError extends Error {}

/** Check a plan before running it: format, known ops, known registers. Throws PlanError. */
export function checkPlan(plan, name = 'plan') {
  if (!plan || plan.format !== 'edgegen.plan/1') {
    throw new PlanError(`${name}: unsupported plan format ${JSON.stringify(plan && plan.format)} (this page reads edgegen.plan/1)`);
  }
  const regs = new Set(plan.registers || []);
  const checkOp = (op, where) => {
    if (!KNOWN_OPS.includes(op.op)) {
      throw new PlanError(`${name}: ${where} uses plan op ${JSON.stringify(op.op)}, which this page does not know ` +
                          `(it knows ${KNOWN_OPS.join(', ')}): update the page or export the bundle with this edgegen`);
    }
    const reads = [op.dst];
    if (op.op === 'affine') for (const [r] of op.terms) reads.push(r);
    if (op.op === 'langevin') reads.push(op.score);
    if (op.op === 'blend') reads.push(op.a, op.b, op.mask);
    for (const r of reads) if (!regs.has(r)) throw new PlanError(`${name}: ${where} names unknown register ${JSON.stringify(r)}`);
  };
  (plan.init || []).forEach((op, j) => checkOp(op, `init[${j}]`));
  (plan.steps || []).forEach((st, i) => {
    if (!regs.has(st.src) || !regs.has(st.dst)) throw new PlanError(`${name}: steps[${i}] evaluates on unknown registers`);
    st.ops.forEach((op, j) => checkOp(op, `steps[${i}].ops[${j}]`));
  });
  if (!regs.has(plan.output)) throw new PlanError(`${name}: output ${JSON.stringify(plan.output)} is not a register`);
  for (const r of plan.inputs || []) {
    if (!regs.has(r)) throw new PlanError(`${name}: input ${JSON.stringify(r)} is not a register`);
    if (!KNOWN_INPUTS.includes(r)) {
      throw new PlanError(`${name}: the plan needs input register ${JSON.stringify(r)}, which this page does not fill ` +
                          `(it fills ${KNOWN_INPUTS.join(', ')})`);
    }
  }
}

/** What a stored plan edits: {strength: number|null, inpaint: bool}, null for a plain plan. */
export function planEdit(plan) {
  if (!plan.inputs || !plan.inputs.length) return null;
  const p = plan.params || {};
  return { strength: p.strength ?? null, inpaint: plan.inputs.includes('mask') };
}

// -- the ops (plan_ops.apply_op) ------------------------------------------------------------------
function affine(op, regs, noise) {
  let acc = null;
  for (const [name, c] of op.terms) { // summed left to right in float32
    const a = regs[name], cf = f32(c);
    if (acc === null) {
      acc = new Float32Array(a.length);
      for (let i = 0; i < a.length; i++) acc[i] = cf * a[i];
    } else {
      for (let i = 0; i < a.length; i++) acc[i] = acc[i] + f32(cf * a[i]);
    }
  }
  if ('noise' in op) {
    const z = noise(op.dst), s = f32(op.noise);
    if (acc === null) {
      acc = new Float32Array(z.length);
      for (let i = 0; i < z.length; i++) acc[i] = s * z[i];
    } else {
      for (let i = 0; i < z.length; i++) acc[i] = acc[i] + f32(s * z[i]);
    }
  }
  if (acc === null) throw new PlanError(`affine op into ${op.dst} has no terms and no noise`);
  regs[op.dst] = acc; // a new array: every right-hand side was read before the write
}

function clip(op, regs) {
  const a = regs[op.dst], lo = f32(op.lo), hi = f32(op.hi), out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = Math.min(Math.max(a[i], lo), hi);
  regs[op.dst] = out;
}

function blend(op, regs) { // M * A + (1 - M) * B
  const m = regs[op.mask], a = regs[op.a], b = regs[op.b], out = new Float32Array(m.length);
  for (let i = 0; i < m.length; i++) out[i] = f32(m[i] * a[i]) + f32(f32(1 - m[i]) * b[i]);
  regs[op.dst] = out;
}

function langevin(op, regs, noise, batch) {
  const x = regs[op.dst], S = regs[op.score], sc = f32(op.scale);
  const score = new Float32Array(S.length);
  for (let i = 0; i < S.length; i++) score[i] = sc * S[i];
  const z = noise(op.dst);
  const per = x.length / batch, out = new Float32Array(x.length);
  for (let b = 0; b < batch; b++) {
    let nz = 0, ns = 0; // float64 sums (numpy sums pairwise: the last bits of these may differ)
    for (let i = b * per; i < (b + 1) * per; i++) { nz += z[i] * z[i]; ns += score[i] * score[i]; }
    const ratio = op.snr * Math.sqrt(nz) / Math.max(Math.sqrt(ns), 1e-30);
    const step = 2.0 * op.alpha * (ratio * ratio);
    const s32 = f32(step), q32 = f32(Math.sqrt(2.0 * step));
    for (let i = b * per; i < (b + 1) * per; i++) out[i] = f32(x[i] + f32(s32 * score[i])) + f32(q32 * z[i]);
  }
  regs[op.dst] = out;
}

function applyOp(op, regs, noise, batch) {
  switch (op.op) {
    case 'affine': return affine(op, regs, noise);
    case 'clip': return clip(op, regs);
    case 'blend': return blend(op, regs);
    case 'langevin': return langevin(op, regs, noise, batch);
    default: throw new PlanError(`unknown plan op ${JSON.stringify(op.op)}`); // checkPlan catches it first
  }
}

/**
 * Run a whole plan for one batch (interpreter.run_batch): labels is an array of integers, shape the
 * per-sample dims, guidance w with the null label for classifier-free guidance.
 * inputs: the plan's input registers for this batch (x_init, mask: Float32Array, batch x the
 * register's per-sample size), filled before init (interpreter.run_batch).
 * onStep(done, total) is awaited after each network step. Returns the output register.
 */
export async function runPlan(plan, net, { shape, labels, seed, firstSample = 0, guidance = 1.0, nullLabel = null, onStep = null, inputs = null }) {
  checkPlan(plan);
  const batch = labels.length;
  const shapes = plan.shapes || {};
  const elems = (dims) => dims.reduce((a, b) => a * b, 1);
  let draws = 0;
  const noise = (register) => {
    const dims = shapes[register] || shape;
    const z = gaussian(seed, batch, elems(dims), draws, STREAM_NOISE, firstSample);
    draws += 1;
    return z;
  };
  const regs = {};
  for (const name of plan.inputs || []) {
    const v = inputs && inputs[name];
    if (!v) throw new PlanError(`the plan needs input register ${JSON.stringify(name)}`);
    const want = batch * elems(shapes[name] || shape);
    if (v.length !== want) throw new PlanError(`input register ${JSON.stringify(name)} has ${v.length} values, the plan needs ${want}`);
    regs[name] = v instanceof Float32Array ? v : Float32Array.from(v);
  }
  for (const op of plan.init) applyOp(op, regs, noise, batch);
  const guided = guidance !== 1.0 && nullLabel !== null && nullLabel !== undefined;
  for (let i = 0; i < plan.steps.length; i++) {
    const st = plan.steps[i];
    const x = regs[st.src];
    if (!x) throw new PlanError(`step ${i} evaluates register ${st.src} before any op wrote it`);
    if (!guided) {
      regs[st.dst] = await net(x, shapes[st.src] || shape, st.t, labels, batch);
    } else { // e_u + w (e_c - e_u), one call on [x; x] with [y; null]
      const xx = new Float32Array(2 * x.length);
      xx.set(x); xx.set(x, x.length);
      const yy = [...labels, ...labels.map(() => nullLabel)];
      const out = await net(xx, shapes[st.src] || shape, st.t, yy, 2 * batch);
      const half = out.length / 2, w = f32(guidance), e = new Float32Array(half);
      for (let k = 0; k < half; k++) e[k] = out[half + k] + f32(w * f32(out[k] - out[half + k]));
      regs[st.dst] = e;
    }
    for (const op of st.ops) applyOp(op, regs, noise, batch);
    if (onStep) await onStep(i + 1, plan.steps.length);
  }
  return regs[plan.output];
}
