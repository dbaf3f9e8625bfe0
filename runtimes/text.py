"""Prompt -> fixed-length token ids with the bundle's BPE tokenizer (tokenizer.json, HF ``tokenizers``).

Documented behaviour for bad prompts (each one a one-line EdgegenError):
- empty or whitespace-only prompt: rejected;
- characters the tokenizer never saw (outside its alphabet after lower-casing): rejected, naming them;
- more tokens than the model's text length: rejected (not truncated), saying how many tokens it has.
Shorter prompts are padded on the right with the pad token up to the text length.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgegen.errors import EdgegenError

PAD, UNK = "[PAD]", "[UNK]"
SEPARATORS = "\x1c\x1d\x1e\x1f"  # isspace() but not whitespace to the tokenizer


class TextEncoder:
    def __init__(self, tokenizer, text_length: int):
        self.tokenizer = tokenizer
        self.text_length = int(text_length)
        vocab = tokenizer.get_vocab()
        self.pad_id = vocab[PAD]
        self.alphabet = {t for t in vocab if len(t) == 1}

    @classmethod
    def from_file(cls, path: Path, text_length: int) -> "TextEncoder":
        from tokenizers import Tokenizer
        try:
            return cls(Tokenizer.from_file(str(path)), text_length)
        except Exception as e:  # tokenizers raises a bare Exception for a bad file
            raise EdgegenError(f"cannot read tokenizer {path}: {str(e).splitlines()[0]}") from None

    def normalize(self, prompt: str) -> str:
        norm = self.tokenizer.normalizer
        return norm.normalize_str(prompt) if norm is not None else prompt

    def encode(self, prompt: str) -> np.ndarray:
        """One prompt -> (text_length,) int64 ids, right-padded."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise EdgegenError("the prompt is empty: describe the image, e.g. \"a handwritten seven\"")
        # Spaces are what the pre-tokenizer splits on (Unicode White_Space): str.isspace() also holds
        # for the separators U+001C..U+001F, which the tokenizer would turn into [UNK].
        surrogates = sorted({c for c in prompt if "\ud800" <= c <= "\udfff"})  # not text (no UTF-8 for them)
        unknown = surrogates or sorted({c for c in self.normalize(prompt)
                                        if c not in self.alphabet and (not c.isspace() or c in SEPARATORS)})
        if unknown:
            shown = ", ".join(repr(c) for c in unknown[:10])
            raise EdgegenError(f"the prompt has characters the tokenizer does not know: {shown} "
                               f"(known: {''.join(sorted(self.alphabet))!r} and spaces)")
        ids = self.tokenizer.encode(prompt).ids
        if len(ids) > self.text_length:
            raise EdgegenError(f"the prompt is {len(ids)} tokens long, more than this model's text length "
                               f"{self.text_length}; shorten it (prompts are rejected, not truncated)")
        out = np.full(self.text_length, self.pad_id, dtype=np.int64)
        out[:len(ids)] = ids
        return out

    def encode_batch(self, prompts: list[str]) -> np.ndarray:
        """(N, text_length) int64."""
        return np.stack([self.encode(p) for p in prompts])
