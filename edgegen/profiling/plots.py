"""PNG plots of a profile report (matplotlib, Agg: no display needed)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _ok(report: dict) -> list[dict]:
    return [r for r in report["results"] if r["status"] == "ok"]


def _batches(report: dict) -> list[int]:
    return sorted({r["batch"] for r in _ok(report)})


def _color(r: dict) -> str:
    return "tab:gray" if r["kind"] != "edgegen" else "tab:blue" if r["precision"] == "fp32" else "tab:orange"


def latency(report: dict, path: Path) -> None:
    """Warm latency per sample (p50 bar, p90 and p99 marks) by backend and precision, one panel per batch."""
    batches = _batches(report)
    fig, axes = plt.subplots(1, len(batches), figsize=(5.5 * len(batches), 4.2), squeeze=False)
    for ax, b in zip(axes[0], batches):
        rows = [r for r in _ok(report) if r["batch"] == b]
        x = np.arange(len(rows))
        p50 = [r["latency_per_sample_ms"]["p50"] for r in rows]
        p90 = [r["latency_per_sample_ms"]["p90"] for r in rows]
        p99 = [r["latency_per_sample_ms"]["p99"] for r in rows]
        ax.bar(x, p50, color=[_color(r) for r in rows], label="p50")
        ax.errorbar(x, p50, yerr=[np.zeros(len(rows)), np.subtract(p90, p50)], fmt="none", ecolor="black",
                    capsize=4, label="p90")
        ax.scatter(x, p99, marker="_", s=200, color="red", zorder=3, label="p99")
        for xi, v in zip(x, p50):
            ax.annotate(f"{v:.1f}", (xi, v), ha="center", va="bottom", fontsize=8, xytext=(0, 2),
                        textcoords="offset points")
        ax.set_xticks(x, [r["name"].replace("baseline:", "base:") for r in rows], rotation=30, ha="right",
                      fontsize=8)
        ax.set_ylabel("ms per sample")
        ax.set_title(f"batch {b}")
        ax.legend(fontsize=8)
    req = report["request"]
    fig.suptitle(f"{report['family']} {req['sampler']}-{req['steps']}: warm latency per sample "
                 "(blue fp32, orange quantized, gray baselines)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def timeline(report: dict, path: Path) -> None:
    """One timed run per configuration: each step's duration and the part spent outside the network."""
    batches = _batches(report)
    fig, axes = plt.subplots(2, len(batches), figsize=(5.5 * len(batches), 6), squeeze=False, sharex="col")
    for j, b in enumerate(batches):
        for r in _ok(report):
            if r["batch"] != b or not r.get("timeline"):
                continue
            tl = r["timeline"]
            steps = np.arange(len(tl))
            axes[0][j].plot(steps, [1000 * s["seconds"] for s in tl], label=r["name"], lw=1.2)
            axes[1][j].plot(steps, [1000 * (s["seconds"] - s["net_seconds"]) for s in tl], label=r["name"], lw=1.2)
        axes[0][j].set_title(f"batch {b}: time per step (the median run)")
        axes[0][j].set_ylabel("ms")
        axes[1][j].set_title("host time per step (outside the network call)")
        axes[1][j].set_ylabel("ms")
        axes[1][j].set_xlabel("step")
        axes[0][j].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def roofline(report: dict, path: Path) -> None:
    """Achieved GFLOP/s inside network calls against arithmetic intensity, under the measured roofs.
    One colour per configuration, one marker per batch size (a legend, not labels that overlap)."""
    rows = [r for r in _ok(report) if "achieved_gflops" in r]
    fig, ax = plt.subplots(figsize=(8, 5))
    peak = report["peak"]["gemm"]["gflops"]
    bw = report["peak"]["bandwidth"]["gbytes_per_s"]
    ai = np.logspace(-1, 3, 200)
    ax.loglog(ai, np.minimum(peak, ai * bw), color="black", lw=1.5,
              label=f"roof: {peak:.0f} GFLOP/s fp32 GEMM, {bw:.0f} GB/s copy")
    names = sorted({r["name"] for r in rows}, key=[r["name"] for r in rows].index)
    colors = {n: plt.cm.tab10(i % 10) for i, n in enumerate(names)}
    markers = {b: m for b, m in zip(_batches(report), "os^Dv<>")}
    for r in rows:
        ax.scatter(r["arithmetic_intensity"], r["achieved_gflops"], color=colors[r["name"]],
                   marker=markers.get(r["batch"], "o"), s=45, zorder=3, edgecolors="black", linewidths=0.5)
    for n in names:
        ax.scatter([], [], color=colors[n], marker="o", label=n)
    for b, m in markers.items():
        ax.scatter([], [], color="white", edgecolors="black", marker=m, label=f"batch {b}")
    if rows:
        lo = min(r["arithmetic_intensity"] for r in rows)
        hi = max(r["arithmetic_intensity"] for r in rows)
        ax.set_xlim(min(lo, peak / bw) / 10, max(hi, peak / bw) * 10)
    ax.set_xlabel("arithmetic intensity (FLOP / byte, no fusion)")
    ax.set_ylabel("achieved GFLOP/s in network calls")
    ax.set_title("roofline (int8 can pass the fp32 roof: its peak is higher)")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
