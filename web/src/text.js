// Prompt -> fixed-length token ids with the bundle's tokenizer.json, the JavaScript twin of
// runtimes/text.py: Hugging Face's own JS tokenizers (npm @huggingface/tokenizers, pinned in
// package-lock.json) read the same file, so the ids equal Python's `tokenizers`. The bad-prompt
// rules are runtimes/text.py's: empty, unknown characters, too long -> one message each.

import { Tokenizer } from '../node_modules/@huggingface/tokenizers/dist/tokenizers.mjs';

const PAD = '[PAD]';

export class PromptError extends Error {}

export class PromptTokenizer {
  constructor(json, textLength) {
    this.tokenizer = new Tokenizer(json, {});
    this.textLength = textLength;
    const vocab = { ...(json.model && json.model.vocab) };
    for (const t of json.added_tokens || []) vocab[t.content] = t.id;
    if (!(PAD in vocab)) throw new PromptError(`the tokenizer has no ${PAD} token`);
    this.padId = vocab[PAD];
    this.alphabet = new Set(Object.keys(vocab).filter((t) => [...t].length === 1));
  }

  normalize(prompt) {
    const norm = this.tokenizer.normalizer;
    return norm ? norm.normalize(prompt) : prompt;
  }

  /** One prompt -> textLength ids, right-padded with [PAD]. */
  encode(prompt) {
    if (typeof prompt !== 'string' || !prompt.trim()) {
      throw new PromptError('the prompt is empty: describe the image, e.g. "a handwritten seven"');
    }
    const unknown = [...new Set([...this.normalize(prompt)].filter((c) => !this.alphabet.has(c) && !/\s/u.test(c)))].sort();
    if (unknown.length) {
      const chars = [...this.alphabet].sort().join('');
      const known = chars.includes("'") && !chars.includes('"') ? `"${chars}"` : `'${chars}'`; // Python's repr
      throw new PromptError(`the prompt has characters the tokenizer does not know: ${unknown.slice(0, 10).map((c) => `'${c}'`).join(', ')} ` +
                            `(known: ${known} and spaces)`);
    }
    const ids = this.tokenizer.encode(prompt).ids;
    if (ids.length > this.textLength) {
      throw new PromptError(`the prompt is ${ids.length} tokens long, more than this model's text length ${this.textLength}; ` +
                            'shorten it (prompts are rejected, not truncated)');
    }
    const out = new Array(this.textLength).fill(this.padId);
    ids.forEach((id, i) => { out[i] = id; });
    return out;
  }
}
