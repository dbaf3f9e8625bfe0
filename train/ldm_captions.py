"""Captions for the latent diffusion family, from the class label: training and held-out templates.

Fashion-MNIST gets its own class names and templates; digits reuse the DALL-E family's caption set
(captions.py). As there, the held-out templates never appear in training (neither in the tokenizer's
corpus nor in the denoiser's data): the acceptance figures prompt with them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgegen.errors import EdgegenError
from edgegen.train import captions as digit_captions

FASHION_NAMES = ("t-shirt", "pair of trousers", "pullover", "dress", "coat",
                 "sandal", "shirt", "sneaker", "bag", "ankle boot")  # train/fashion.py CLASS_NAMES, in words
FASHION_TRAIN = (
    "a photo of {a} {name}",
    "{a} {name}",
    "{name}",
    "a picture of {a} {name}",
    "an image of {a} {name}",
    "a black and white photo of {a} {name}",
    "a product photo of {a} {name}",
    "this is {a} {name}",
    "a small {name}",
    "a grey {name}",
)
FASHION_HELD_OUT = (
    "a photograph of one {name}",
    "a low resolution picture of {a} {name}",
    "a catalogue image showing {a} {name}",
)


@dataclass(frozen=True)
class CaptionSet:
    names: tuple  # one per label
    train_templates: tuple
    held_out_templates: tuple

    def caption(self, template: str, label: int) -> str:
        name = self.names[label]
        return template.format(name=name, a="an" if name[0] in "aeiou" else "a", word=name, d=label)

    def corpus(self, held_out: bool = False) -> list[str]:
        templates = self.held_out_templates if held_out else self.train_templates
        return [self.caption(t, y) for t in templates for y in range(len(self.names))]

    def random_captions(self, labels: np.ndarray, seed: int, held_out: bool = False) -> list[str]:
        """One caption per label, the template drawn uniformly (seeded)."""
        templates = self.held_out_templates if held_out else self.train_templates
        pick = np.random.default_rng(seed).integers(0, len(templates), size=len(labels))
        return [self.caption(templates[i], int(y)) for i, y in zip(pick, labels)]

    def label_prompts(self) -> list[str]:
        """The prompt of each label when sampling by label (the first training template)."""
        return [self.caption(self.train_templates[0], y) for y in range(len(self.names))]


FASHION = CaptionSet(FASHION_NAMES, FASHION_TRAIN, FASHION_HELD_OUT)
DIGITS = CaptionSet(digit_captions.WORDS, digit_captions.TRAIN_TEMPLATES, digit_captions.HELD_OUT_TEMPLATES)
ALPHABET = digit_captions.ALPHABET


def caption_set(source: str) -> CaptionSet:
    if source == "fashion":
        return FASHION
    if source == "digits":
        return DIGITS
    raise EdgegenError(f"the ldm recipe captions its images from class names: it takes --data fashion or digits, "
                       f"got {source!r}")
