"""TensorRT engines built from a bundle's ONNX through the TensorRT Python API, and cached.

Engines are specific to a GPU and a TensorRT version, so they are built where they run - at
export when TensorRT and a GPU are present, else on first load by the tensorrt backend - and
cached under ``cache_dir()/tensorrt/<GPU>-trt<version>/`` keyed by the ONNX sha256, precision
and profile. This is runtime code (the backend needs it without the export stage);
export/tensorrt_export.py writes the bundle side.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Optional

from edgegen.errors import EdgegenError
from edgegen.paths import atomic_write_bytes, cache_dir

PRECISIONS = ("fp32", "fp16", "int8")


def tensorrt_reason() -> Optional[str]:
    """None when engines can be built here, else what is missing (one line)."""
    import importlib.util
    if importlib.util.find_spec("tensorrt") is None:
        return "the Python package 'tensorrt' (NVIDIA TensorRT) is not installed"
    from edgegen.runtimes.backends.targets import gpu_reason
    return gpu_reason("TensorRT")


def engine_key(onnx_path: Path, precision: str, profile: dict) -> tuple[str, str]:
    """(cache folder for this GPU + TensorRT version, file name for this network)."""
    import tensorrt as trt
    import torch
    gpu = re.sub(r"[^A-Za-z0-9._-]+", "_", torch.cuda.get_device_name(0))
    h = hashlib.sha256(Path(onnx_path).read_bytes())
    h.update(json.dumps({"precision": precision, "profile": profile}, sort_keys=True).encode())
    return f"{gpu}-trt{trt.__version__}", f"{Path(onnx_path).stem}-{precision}-{h.hexdigest()[:16]}.engine"


class _CacheCalibrator:
    """INT8 calibrator that only replays a calibration cache (no batches: the cache has the scales)."""

    def __new__(cls, cache: bytes):
        import tensorrt as trt

        class Calibrator(trt.IInt8EntropyCalibrator2):
            def __init__(self):
                super().__init__()
                self.cache = cache

            def get_batch_size(self):
                return 1

            def get_batch(self, names):
                return None

            def read_calibration_cache(self):
                return self.cache

            def write_calibration_cache(self, cache):
                return None

        return Calibrator()


def build_engine(onnx_path: Path, precision: str, profile: dict, input_dims: dict,
                 workspace_mib: int = 1024, calibration_cache: Optional[bytes] = None) -> bytes:
    """Serialized engine. ``input_dims``: input name -> shape with dim names; ``profile``: dim
    name -> (min, opt, max)."""
    import tensorrt as trt
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch (the only mode in TensorRT 10)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EdgegenError(f"TensorRT cannot parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "int8":
        if calibration_cache is None:
            raise EdgegenError("TensorRT int8 needs a calibration cache (run the calibration stage first)")
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_flag(trt.BuilderFlag.FP16)  # layers without scales fall back to fp16, not fp32
        config.int8_calibrator = _CacheCalibrator(calibration_cache)
    opt = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        inp = network.get_input(i)
        dims = input_dims[inp.name]
        shapes = [[profile[d][k] if isinstance(d, str) else int(d) for d in dims] for k in range(3)]
        opt.set_shape(inp.name, *shapes)
    config.add_optimization_profile(opt)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise EdgegenError(f"TensorRT could not build a {precision} engine for {onnx_path.name} (see its log)")
    return bytes(engine)


def cached_engine(onnx_path: Path, precision: str, profile: dict, input_dims: dict, workspace_mib: int = 1024,
                  calibration_cache: Optional[bytes] = None, root: Optional[Path] = None) -> Path:
    """The engine file for this GPU and TensorRT version, built once."""
    folder, name = engine_key(onnx_path, precision, profile)
    path = Path(root or cache_dir() / "tensorrt") / folder / name
    if not path.is_file():
        atomic_write_bytes(path, build_engine(onnx_path, precision, profile, input_dims, workspace_mib,
                                              calibration_cache))
    return path


def calibration_cache(manifest) -> Optional[Path]:
    rel = manifest.data.get("calibration", {}).get("tensorrt_cache")
    return manifest.root / rel if rel else None
