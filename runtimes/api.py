"""The Python API apps use: open a bundle, pick a backend, sample (pipeline.py has the details).

    from edgegen.runtimes.api import open_pipeline
    pipe = open_pipeline("bundles/ddpm-small", backend="onnxruntime")
    images = pipe.sample(16, seed=0, labels=3)   # (16, 1, 16, 16) float32 in [-1, 1]
"""
from edgegen.errors import Cancelled, EdgegenError
from edgegen.runtimes.pipeline import Pipeline, default_backend, open_manifest, open_pipeline
from edgegen.runtimes.stages import MAX_SAMPLES

__all__ = ["Cancelled", "EdgegenError", "MAX_SAMPLES", "Pipeline", "default_backend", "open_manifest",
           "open_pipeline"]
