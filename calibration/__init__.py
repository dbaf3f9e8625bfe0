"""Calibration and INT8: calibration data recorded from real sampling trajectories
(record.py), the portable calibration artifact (artifact.py), one adapter per quantizer
(ort_quant.py, openvino_quant.py, tensorrt_cache.py, coreml_quant.py), the quality gate
(gate.py) with automatic mixed precision (sensitivity.py), and the orchestration that adds
the int8 models to a bundle atomically (calibrate.py)."""
