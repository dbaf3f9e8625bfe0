"""Captions for digit images, from the label: varied training templates and held-out templates.

The held-out templates never appear in training (neither in the tokenizer's corpus nor in the
transformer's data); the DALL-E acceptance test prompts with them.
"""
from __future__ import annotations

import numpy as np

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

TRAIN_TEMPLATES = (
    "a handwritten {word}",
    "the digit {d}",
    "number {word}, drawn by hand",
    "a picture of the number {word}",
    "digit {word}",
    "the number {d}",
    "an image of a {word}",
    "{word}",
    "{d}",
    "a hand drawn {d}",
    "a drawing of the digit {word}",
    "the handwritten number {d}",
)
HELD_OUT_TEMPLATES = (
    "a drawing of a handwritten {word}",
    "an image of the digit {d}",
    "the number {word}, written by hand",
)
# Every character a prompt may use (the tokenizer's initial alphabet), beyond what the corpus has.
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789,.-'!?"


def caption(template: str, label: int) -> str:
    return template.format(word=WORDS[label], d=label)


def corpus(templates=TRAIN_TEMPLATES) -> list[str]:
    """Every caption of ``templates`` for every label (the tokenizer's training text)."""
    return [caption(t, y) for t in templates for y in range(len(WORDS))]


def random_captions(labels: np.ndarray, seed: int, templates=TRAIN_TEMPLATES) -> list[str]:
    """One caption per label, the template drawn uniformly (seeded)."""
    pick = np.random.default_rng(seed).integers(0, len(templates), size=len(labels))
    return [caption(templates[i], int(y)) for i, y in zip(pick, labels)]


def label_prompts() -> list[str]:
    """The prompt used for each label when sampling by label (the first training template)."""
    return [caption(TRAIN_TEMPLATES[0], y) for y in range(len(WORDS))]
