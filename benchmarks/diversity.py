"""Render the diversity and memorization figures of every family's small preset (issue 21).

Reads the committed `edgegen eval` JSON files (one per family, 500 samples, onnxruntime, seed 0):

    edgegen eval bundles/NAME --n 500 --json benchmarks/NAME_eval.json

and writes one table to benchmarks/diversity.md; the same table replaces the section between the
markers in benchmarks/families.md and benchmarks/vq_dalle.md, so those reports show diversity and
memorization next to their accuracy and FID without re-sampling.

    .venv/bin/python benchmarks/diversity.py
"""
from __future__ import annotations

import json
from pathlib import Path

from edgegen.paths import atomic_write_text

HERE = Path(__file__).resolve().parent
# (row name, eval file); a missing file is listed as not measured
ROWS = [
    ("DDPM small, ddim-50", "quality_ddpm_small_eval.json"),
    ("SDE (VP) small, pc-100", "sde_small_eval.json"),
    ("flow small, rk4-20", "flow_small_eval.json"),
    ("DCGAN small (new recipe)", "gan_diversity_small_eval.json"),
    ("VQ-VAE + prior small, T = 1", "vqvae_small_eval.json"),
    ("DALL-E small, held-out prompts, T = 1", "dalle_small_eval.json"),
    ("LDM small (fashion), held-out prompts, ddim-50", "ldm_small_eval.json"),
]
BEGIN, END = "<!-- diversity: begin (benchmarks/diversity.py) -->", "<!-- diversity: end -->"


def _row(name: str, s: dict) -> str:
    d, m, r = s["diversity"], s["memorization"], s["diversity"]["reference"]
    return (f"| {name} | {s['fid']:.2f} | {s['accuracy']:.3f} | {d['precision']:.3f} | "
            f"{d['recall']:.3f} ({100 * d['recall_vs_reference']:.0f}%) | "
            f"{d['coverage']:.3f} ({100 * d['coverage_vs_reference']:.0f}%) | {d['spread_ratio']:.2f} | "
            f"{100 * m['fraction_memorized']:.1f}% | {r['recall']:.3f} / {r['coverage']:.3f} |")


def table() -> str:
    lines = ["| model | FID | accuracy | precision | recall (of real) | coverage (of real) | spread / real "
             "| memorized | real same-n recall / coverage |", "|---|---|---|---|---|---|---|---|---|"]
    weak = []
    for name, file in ROWS:
        path = HERE / file
        if not path.exists():
            lines.append(f"| {name} | not measured (`{file}` missing) | | | | | | | |")
            continue
        s = json.loads(path.read_text())
        lines.append(_row(name, s))
        if s["diversity"]["recall_vs_reference"] < 0.6:
            weak.append(name)
    lines += ["", "FID and accuracy use the data set's evaluator (digits, or fashion for the LDM); precision/recall",
              "(k = 3) and density/coverage (k = 5) are on its features against the test split; the last column is",
              "the same figures for 500 real training images. Memorized: samples closer to a training image than",
              "the 1st percentile of the test images' nearest-training distances (about 1% for real data).",
              "Below 60% of the real recall: " + (", ".join(weak) if weak else "none") + "."]
    return "\n".join(lines)


def _replace_section(path: Path, body: str) -> None:
    text = path.read_text()
    section = f"{BEGIN}\n## Diversity and memorization (small presets, 500 samples)\n\n{body}\n{END}"
    if BEGIN in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    atomic_write_text(path, text)


def main() -> int:
    body = table()
    atomic_write_text(HERE / "diversity.md", "# Diversity and memorization of every family\n\n"
                      "`python benchmarks/diversity.py` renders this from the `edgegen eval` JSON files next to it.\n\n"
                      + body + "\n")
    for name in ("families.md", "vq_dalle.md"):
        _replace_section(HERE / name, body)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
