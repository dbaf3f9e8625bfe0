"""Latency profiling per backend and accelerator (``edgegen profile``).

Every configuration (backend x precision x batch, and the baselines) runs in its own
subprocess (worker.py) so load time, first-call latency and peak memory are honest:
nothing is shared or already imported. runner.py orchestrates, flops.py counts the
work per network call from the ONNX graph, peak.py measures the machine's peak, and
report.py / plots.py write report.json, report.md and the PNG plots.
"""
