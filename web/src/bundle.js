// A bundle as the page sees it: manifest.json (schema 1 or 2, edgegen/manifest.py), its stored
// plans and its ONNX files, fetched relative to the bundle's URL and checked against the
// manifest's sha256. Anything the page cannot run is a BundleError with one clear line.

export class BundleError extends Error {}

/** Version 1's `sampling` section -> version 2's `pipeline` (manifest.migrate, for plan bundles). */
export function migrate(data) {
  if (!data || typeof data !== 'object') throw new BundleError('manifest.json is not a JSON object');
  if (data.schema_version === 2) return data;
  if (data.schema_version === 1 && data.sampling) {
    const k = (data.data && data.data.num_classes) || 0;
    return { ...data, schema_version: 2, migrated_from: 1,
             pipeline: { condition: { kind: k > 0 ? 'label' : 'none' }, generator: { ...data.sampling } } };
  }
  throw new BundleError(`manifest schema_version ${JSON.stringify(data.schema_version)} is not one this page reads (1, 2)`);
}

export async function fetchManifest(base) {
  let r;
  try {
    r = await fetch(new URL('manifest.json', base));
  } catch (e) {
    throw new BundleError(`cannot reach the bundle at ${base}: ${e.message}`);
  }
  if (!r.ok) throw new BundleError(`no bundle at ${base}: manifest.json answered HTTP ${r.status}`);
  let data;
  try {
    data = await r.json();
  } catch (e) {
    throw new BundleError(`${base}manifest.json is not valid JSON`);
  }
  return migrate(data);
}

/** The fp32 ONNX file entry of a role, or a BundleError saying what the bundle has instead. */
export function onnxEntry(manifest, role) {
  const spec = (manifest.roles || {})[role];
  if (!spec) throw new BundleError(`the manifest names role '${role}' but does not describe it`);
  const files = spec.files || {};
  const onnx = files.onnx && files.onnx.fp32;
  if (!onnx) {
    const has = Object.keys(files).sort().join(', ') || 'none';
    throw new BundleError(`this bundle has no ONNX files (role '${role}' has: ${has}); the page runs ONNX ` +
                          'with onnxruntime-web: export it with `edgegen export RUN --format onnx`');
  }
  return onnx;
}

/** What the page can run of this bundle; throws BundleError for the rest. */
export function checkSupported(manifest) {
  const p = manifest.pipeline || {};
  const gen = p.generator || {};
  if (gen.kind !== 'plan') {
    throw new BundleError(`this bundle's generator is ${JSON.stringify(gen.kind)} (a token loop for 'tokens'); ` +
                          'the page runs sampler plans (DDPM, score SDE, flow, GAN families)');
  }
  const condition = p.condition || { kind: 'none' };
  if (!['none', 'label', 'prompt'].includes(condition.kind)) {
    throw new BundleError(`this bundle is conditioned on ${JSON.stringify(condition.kind)}; the page takes class labels, ` +
                          'prompts, or nothing');
  }
  if (!manifest.plans || Object.keys(manifest.plans).length === 0) {
    throw new BundleError('this bundle stores no sampler plans (re-export it with this edgegen)');
  }
  const roles = [gen.role, p.decoder && p.decoder.role, condition.encoder && condition.encoder.role].filter(Boolean);
  roles.forEach((r) => onnxEntry(manifest, r));
  // the image encoder (latent image-to-image, inpainting): opened when the bundle stores edit plans
  // and has its ONNX file; without it those plans get a message when asked for
  const edits = Object.values(manifest.plans).some((pl) => pl && pl.inputs && pl.inputs.length);
  const enc = p.encoder && p.encoder.role;
  if (edits && enc && !roles.includes(enc) && ((manifest.roles[enc] || {}).files || {}).onnx) roles.push(enc);
  return roles;
}

function hex(buf) {
  return [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** The manifest's entry ({path, sha256}) for a side file such as tokenizer.json, else {path}. */
export function sideEntry(manifest, path) {
  return Object.values(manifest.files || {}).find((e) => e && e.path === path) || { path };
}

/** Fetch a bundle file and check its sha256 (crypto.subtle: the page is on 127.0.0.1, a secure context). */
export async function fetchFile(base, entry) {
  const url = new URL(entry.path, base);
  const r = await fetch(url);
  if (!r.ok) throw new BundleError(`bundle file ${entry.path} answered HTTP ${r.status}`);
  const buf = await r.arrayBuffer();
  if (entry.sha256 && globalThis.crypto && crypto.subtle) {
    const got = hex(await crypto.subtle.digest('SHA-256', buf));
    if (got !== entry.sha256) throw new BundleError(`sha256 mismatch for ${entry.path}: the file was changed or corrupted`);
  }
  return new Uint8Array(buf);
}
