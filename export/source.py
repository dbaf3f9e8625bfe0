"""What the exporter takes: networks and the manifest that describes them, from anywhere.

The export stage never reads training runs itself (layers: train -> export -> runtimes).
Code that knows where models come from builds an ExportSource: edgegen.train.runs.export_source
for edgegen's own training runs; an importer for models trained elsewhere does the same.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np


@dataclass
class ExportSource:
    data: dict  # the manifest (current schema) before any file is written: family, data, roles, pipeline, ...
    modules: dict  # role -> torch.nn.Module in eval mode, every role of data["roles"]
    files: dict[str, Path] = field(default_factory=dict)  # side files copied into the bundle (tokenizer.json)
    real_images: Optional[np.ndarray] = None  # a few real test images: the parity gate's data call of
    #                                           encoders and decoders (None: random inputs only)
