"""CPU feature detection (edgegen/profiling/cpu_features.py) and the precision a backend ran."""
import pytest

from edgegen.profiling.cpu_features import backend_precision, cpu_features, describe, parse_cpuinfo

XEON = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx2 f16c avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8 avx512fp16
"""
EPYC = """processor\t: 0
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx2 f16c avx512f avx512_vnni avx512_bf16
processor\t: 1
flags\t\t: fpu
"""
OLD = "model name\t: Old\nflags\t\t: fpu sse2 avx\n"


def test_flags_are_parsed_from_the_first_processor():
    x, e, o = parse_cpuinfo(XEON), parse_cpuinfo(EPYC), parse_cpuinfo(OLD)
    assert x["amx"] and x["avx512_bf16"] and x["avx512_fp16"] and x["model"].startswith("Intel")
    assert e["avx512_bf16"] and e["avx512_vnni"] and not e["amx"] and not e["avx512_fp16"]
    assert e["bf16_native"] and e["int8_dot"]
    assert not any(o[k] for k in ("avx2", "avx512_bf16", "avx512_vnni", "amx", "bf16_native", "int8_dot"))
    assert describe(e).startswith("AVX2, AVX512F, AVX512-VNNI, AVX512-BF16; no AMX")


def test_this_machine_and_a_missing_file():
    f = cpu_features()
    assert f["source"] == "/proc/cpuinfo flags" and isinstance(f["avx2"], bool)
    missing = cpu_features("/nonexistent/cpuinfo")
    assert missing["avx2"] is None and "unknown" in describe(missing)


def test_backends_report_the_precision_they_ran(tiny_bundle):
    from edgegen.runtimes.api import open_pipeline
    ort = open_pipeline(tiny_bundle, "onnxruntime")
    ort.sample(2, steps=2)
    r = backend_precision(ort.backend)
    assert r["ran"] == "fp32" and r["detail"]["weight_types"]["float"] > 0
    pytest.importorskip("openvino")
    ov = open_pipeline(tiny_bundle, "openvino")
    ov.sample(2, steps=2)
    r = backend_precision(ov.backend)
    assert r["ran"] == "fp32" and r["hint"] == "f32"
    assert r["detail"]["layers_by_runtime_precision"].get("f32", 0) > 0
