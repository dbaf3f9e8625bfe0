"""What the CPU can do for reduced precision, and what precision each backend actually ran.

CPU features come from the kernel's flag list in ``/proc/cpuinfo`` (Linux). py-cpuinfo is not a
dependency of the project and is not installed here; the kernel's list is what the runtimes' own
dispatchers see (oneDNN, MLAS read CPUID, the kernel reports the same bits), so it is read
directly: one line, no library needed. Off Linux the features are reported as unknown.

The precision a backend ran is asked of the runtime, not inferred from the request:
OpenVINO's compiled model answers ``INFERENCE_PRECISION_HINT`` (the precision its CPU plugin
chose: an ``f16`` request runs ``bf16`` on a CPU without AVX512-FP16) and every layer's
``runtimePrecision``; onnxruntime runs the ONNX file's types, so its answer is the float type of
the model's weights (initializers).
"""
from __future__ import annotations

from pathlib import Path

# our name -> the kernel's flag (x86); AMX has three flags, tile support is the one that matters
FEATURES = {"avx2": "avx2", "avx512f": "avx512f", "avx512_vnni": "avx512_vnni", "avx_vnni": "avx_vnni",
            "avx512_bf16": "avx512_bf16", "avx512_fp16": "avx512fp16", "amx_tile": "amx_tile",
            "amx_bf16": "amx_bf16", "amx_int8": "amx_int8", "f16c": "f16c"}


def parse_cpuinfo(text: str) -> dict:
    """The features of the first processor listed in ``/proc/cpuinfo`` text."""
    flags: set[str] = set()
    model = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        if key in ("flags", "Features") and not flags:  # x86 "flags", arm64 "Features"
            flags = set(value.split())
    out = {"source": "/proc/cpuinfo flags", "model": model}
    out.update({name: flag in flags for name, flag in FEATURES.items()})
    out["amx"] = out["amx_tile"] and (out["amx_bf16"] or out["amx_int8"])
    out["bf16_native"] = out["avx512_bf16"] or out["amx_bf16"]  # bf16 dot products in hardware
    out["int8_dot"] = out["avx512_vnni"] or out["avx_vnni"] or out["amx_int8"]
    return out


def cpu_features(path: str = "/proc/cpuinfo") -> dict:
    try:
        return parse_cpuinfo(Path(path).read_text())
    except OSError as e:
        return {"source": f"unknown ({path}: {e.strerror})", "model": None, **{k: None for k in FEATURES},
                "amx": None, "bf16_native": None, "int8_dot": None}


def describe(f: dict) -> str:
    """One line: the features present, e.g. 'AVX2, AVX512F, AVX512-VNNI, AVX512-BF16; no AMX'."""
    if f.get("avx2") is None:
        return f"CPU features unknown ({f['source']})"
    names = {"avx2": "AVX2", "avx512f": "AVX512F", "avx512_vnni": "AVX512-VNNI", "avx_vnni": "AVX-VNNI",
             "avx512_bf16": "AVX512-BF16", "avx512_fp16": "AVX512-FP16", "amx": "AMX"}
    have = [v for k, v in names.items() if f.get(k)]
    missing = [v for k, v in names.items() if not f.get(k) and k in ("avx512_bf16", "avx512_vnni", "amx")]
    return ", ".join(have) + (f"; no {', '.join(missing)}" if missing else "") + f" (from {f['source']})"


# -- what a backend ran ------------------------------------------------------------------------
def _onnx_weight_types(path: Path) -> dict:
    import onnx
    from onnx import TensorProto
    model = onnx.load(str(path), load_external_data=False)
    counts: dict = {}
    for init in model.graph.initializer:
        if init.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.INT8,
                              TensorProto.UINT8):
            name = TensorProto.DataType.Name(init.data_type).lower()
            counts[name] = counts.get(name, 0) + 1
    return counts


def backend_precision(backend) -> dict:
    """{"requested", "ran", "detail"} for a backend after it ran (OpenVINO compiles on first use)."""
    out: dict = {"requested": backend.precision}
    if backend.name == "openvino" and hasattr(backend, "compiled_precisions"):
        out.update(backend.compiled_precisions())
    elif backend.format == "onnx" and hasattr(backend, "session"):
        path = backend.manifest.file(backend.role_name, "onnx", backend.precision)
        types = _onnx_weight_types(path)
        ran = "int8 (QDQ) + fp32" if "int8" in types or "uint8" in types else \
            "fp16" if types.get("float16", 0) > types.get("float", 0) else "fp32"
        out.update({"ran": ran, "detail": {"weight_types": types,
                                           "providers": list(backend.session.get_providers())}})
    else:
        out["ran"] = None
        out["detail"] = f"backend '{backend.name}' does not report its execution precision"
    return out


def machine_features() -> dict:
    """The report's ``machine.cpu_features`` section."""
    f = cpu_features()
    return {**f, "summary": describe(f)}

