"""The prompt tokenizer as an OpenVINO model, for the native runtime (issue 17, prompts in C++).

A prompt model's bundle carries its Hugging Face ``tokenizer.json`` (runtimes/text.py tokenizes
with it in Python). `openvino-tokenizers` converts that tokenizer into an OpenVINO model
(``tokenizer.xml`` + ``tokenizer.bin``: string tensor in, ``input_ids`` out) that C++ runs with
OpenVINO plus the package's extension library ``libopenvino_tokenizers.so``, as openvino.genai
does (runtimes/native/src/tokenizer.cpp). The model produces the tokenizer's raw ids: the rules
of runtimes/text.py around them (empty prompts, unknown characters, too long, right padding with
the pad id) are applied by the caller, in Python by ``finish`` below and in C++ by Tokenizer.

Like every conversion it ends with a parity gate: on a corpus of the bundle's prompts, words
recombined, random strings over the alphabet and fixed hard cases (case, spacing, punctuation,
unicode, unknown characters, empty and too-long prompts), ``finish(converted ids)`` must equal
``TextEncoder.encode`` (the same ids, or the same kind of refusal); a failure fails the export.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgegen.errors import EdgegenError
from edgegen.manifest import Manifest, file_entry
from edgegen.runtimes.text import UNK, TextEncoder

MODEL, WEIGHTS = "tokenizer.xml", "tokenizer.bin"  # beside tokenizer.json in the bundle
SIDE_MODEL, SIDE_WEIGHTS = "tokenizer_openvino", "tokenizer_openvino_weights"  # manifest "files" names

# Python's str.isspace() code points (the set runtimes/text.py strips and skips); the C++
# Tokenizer has the same table.
PY_SPACE = frozenset([*range(0x09, 0x0E), *range(0x1C, 0x21), 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
                      0x2028, 0x2029, 0x202F, 0x205F, 0x3000])

# Hard cases every tokenizer is checked on (besides the corpus drawn from the bundle).
FIXED = [
    "", " ", "   \t\n ", "\u3000", "a", "A", "A HANDWRITTEN SEVEN", "  a   handwritten\tseven  ", "seven.",
    "a,b.c-d'e!f?g", "...", "!!!???", "--", "a-b", "it's", "7", "0123456789", "x" * 40, "a " * 30,
    "é", "café", "naïve", "ÉCOLE", "ß", "ﬁve", "Ｓｅｖｅｎ", "①", "½", "²", "\u00a0a\u00a0", "a\u2009b",
    "日本", "😀", "a😀b", "Ω", "İ", "ǅ", "\x1c", "a\x1fb", "\u200b", "a\u200db", "e\u0301", "\u212b",
    "tab\tand\nnewline", "\x00", "a\x7fb", "x\u0085y",
]


def finish(raw: list[int], prompt: str, text_length: int, pad_id: int, unk_id: int | None) -> np.ndarray:
    """The converted model's raw ids -> what TextEncoder.encode returns, or the same refusal
    (runtimes/text.py's rules; tokenizer.cpp Tokenizer::encode is this function in C++)."""
    if all(ord(c) in PY_SPACE for c in prompt):
        raise EdgegenError("the prompt is empty")
    # A C string ends at NUL: edgegen_tokenize never sees one, and the Python binding refuses it.
    if (unk_id is not None and unk_id in raw) or "\x00" in prompt:
        raise EdgegenError("the prompt has characters the tokenizer does not know")
    if len(raw) > text_length:
        raise EdgegenError(f"the prompt is {len(raw)} tokens long")
    out = np.full(text_length, pad_id, dtype=np.int64)
    out[:len(raw)] = raw
    return out


def corpus(text: TextEncoder, label_prompts: list[str], seed: int = 0, n_random: int = 400) -> list[str]:
    """Prompts the gate compares on: FIXED, the stored label prompts (and their upper case), vocabulary
    words recombined, and random strings over the tokenizer's alphabet with spaces."""
    rng = np.random.default_rng(seed)
    words = sorted(t for t in text.tokenizer.get_vocab() if t not in (UNK, "[PAD]") and not t.startswith("["))
    alphabet = sorted(text.alphabet - {UNK, "[PAD]"})
    out = list(FIXED) + list(label_prompts) + [p.upper() for p in label_prompts]
    for _ in range(n_random):
        k = int(rng.integers(1, 8))
        out.append(" ".join(words[i] for i in rng.integers(0, len(words), k)))
        chars = [alphabet[i] if rng.random() > 0.15 else " " for i in rng.integers(0, len(alphabet), int(rng.integers(1, 30)))]
        out.append("".join(chars))
    return out


def _outcome(fn):
    try:
        return ("ids", fn().tolist())
    except EdgegenError as e:  # compared by kind: the first words of the message
        msg = str(e)
        kind = ("empty" if "empty" in msg else "unknown" if "does not know" in msg
                else "long" if "tokens long" in msg else msg)
        return ("error", kind)


def convert(tokenizer_json: Path, out_dir: Path) -> tuple[Path, Path]:
    """tokenizer.json -> out_dir/tokenizer.xml + .bin (the openvino-tokenizers conversion)."""
    try:
        import openvino as ov
        import transformers  # noqa: F401  (openvino_tokenizers converts transformers' tokenizer objects)
        from openvino_tokenizers import convert_tokenizer
        from tokenizers import Tokenizer
        from transformers import PreTrainedTokenizerFast
    except ImportError as e:
        raise EdgegenError(f"converting the prompt tokenizer needs {e.name} (pip install -e '.[export]')") from None
    fast = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_file(str(tokenizer_json)))
    # add_special_tokens: Tokenizer.encode's default (a post-processor's BOS/EOS, e.g. CLIP's);
    # no padding or truncation: the runtime refuses long prompts and pads itself.
    model = convert_tokenizer(fast, add_special_tokens=True, with_detokenizer=False)
    xml = Path(out_dir) / MODEL
    ov.save_model(model, str(xml), compress_to_fp16=False)
    return xml, xml.with_suffix(".bin")


def check(xml: Path, text: TextEncoder, prompts: list[str]) -> dict:
    """The parity gate: the converted model + ``finish`` against TextEncoder.encode on ``prompts``."""
    import openvino as ov
    import openvino_tokenizers  # noqa: F401  (registers the extension's operations with OpenVINO)
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(xml)), "CPU")
    unk = text.tokenizer.get_vocab().get(UNK)
    mismatches = []
    given = [p for p in prompts if p]  # one batched call; the attention mask marks each row's ids
    res = compiled(given) if given else None
    rows = {p: res["input_ids"][i][res["attention_mask"][i] == 1].tolist() for i, p in enumerate(given)}
    for p in prompts:
        want = _outcome(lambda: text.encode(p))
        raw = rows.get(p, [])
        got = _outcome(lambda: finish(raw, p, text.text_length, text.pad_id, unk))
        if got != want:
            mismatches.append({"prompt": p, "python": want, "openvino": got})
    return {"passed": not mismatches, "prompts": len(prompts), "mismatches": mismatches[:20]}


def write(manifest: Manifest, root: Path) -> dict | None:
    """Convert a prompt model's tokenizer into the bundle (root/tokenizer.xml + .bin, listed with
    sha256 in the manifest's files; the condition stage's tokenizer names the model), gate it, and
    return the check (None for a bundle without a tokenizer)."""
    cond = manifest.stage("condition") or {}
    tok = cond.get("tokenizer")
    if cond.get("kind") != "prompt" or not tok:
        return None
    text = TextEncoder.from_file(root / tok["file"], tok["text_length"])
    if UNK not in text.tokenizer.get_vocab():
        # Not edgegen's BPE (train/tokenizer.py): an imported CLIP tokenizer is byte-level, its unknown
        # characters do not show as [UNK], so the C++ rules cannot tell them; it keeps Python tokenizing.
        return None
    xml, _ = convert(root / tok["file"], root)
    result = check(xml, text, corpus(text, cond.get("label_prompts", [])))
    if not result["passed"]:
        first = result["mismatches"][0]
        raise EdgegenError(f"tokenizer parity gate failed: the OpenVINO tokenizer differs from tokenizer.json on "
                           f"{len(result['mismatches'])} of {result['prompts']} prompts, e.g. {first['prompt']!r}: "
                           f"python {first['python']}, openvino {first['openvino']}; no bundle written")
    manifest.add_side_file(SIDE_MODEL, file_entry(root, MODEL))
    manifest.add_side_file(SIDE_WEIGHTS, file_entry(root, WEIGHTS))
    tok["openvino"] = MODEL
    return result
