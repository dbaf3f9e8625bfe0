"""A byte-pair-encoding tokenizer (Sennrich et al. 2016) trained on the caption corpus with the
Hugging Face ``tokenizers`` library, saved as ``tokenizer.json`` in the run and in the bundle.

Normalization: NFKC then lower-case; pre-tokenization: words and punctuation (``Whitespace``).
Special tokens: ``[PAD]`` (id 0, right padding to the fixed text length) and ``[UNK]`` (id 1, never
produced: prompts with unknown characters are rejected, see runtimes/text.py).
"""
from __future__ import annotations

from edgegen.runtimes.text import PAD, UNK


def train_tokenizer(corpus: list[str], vocab_size: int, alphabet: str):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, UNK],
                                  initial_alphabet=list(alphabet), show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    return tok
