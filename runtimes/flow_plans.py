"""Fixed-step ODE solvers for flow matching (dx/dt = v(x, t, y), t from 0 to 1) as plans.

h = 1 / N, t_k = k h. The network output register is the stage slope.
    euler  x += h v(x, t)
    heun   k1 = v(x, t); x1 = x + h k1; k2 = v(x1, t + h); x += h/2 (k1 + k2)
    rk4    k1 = v(x, t); k2 = v(x + h/2 k1, t + h/2); k3 = v(x + h/2 k2, t + h/2);
           k4 = v(x + h k3, t + h); x += h/6 (k1 + 2 k2 + 2 k3 + k4)
"""
from __future__ import annotations

from edgegen.errors import EdgegenError
from edgegen.runtimes.plans import Plan, affine
from edgegen.runtimes.samplers import register

METHODS = ("euler", "heun", "rk4")  # registered below as samplers of process "flow"


def compile_flow_solver(method: str, steps: int) -> Plan:
    if method not in METHODS:
        raise EdgegenError(f"unknown sampler '{method}' (choose {', '.join(METHODS)})")
    if steps < 1:
        raise EdgegenError(f"steps must be >= 1, got {steps}")
    h = 1.0 / steps
    out = []
    for i in range(steps):
        t = i * h
        if method == "euler":
            out.append({"t": t, "src": "x", "dst": "k1", "ops": [affine("x", [("x", 1.0), ("k1", h)])]})
        elif method == "heun":
            out.append({"t": t, "src": "x", "dst": "k1", "ops": [affine("x1", [("x", 1.0), ("k1", h)])]})
            out.append({"t": t + h, "src": "x1", "dst": "k2",
                        "ops": [affine("x", [("x", 1.0), ("k1", h / 2), ("k2", h / 2)])]})
        else:
            out += [{"t": t, "src": "x", "dst": "k1", "ops": [affine("x1", [("x", 1.0), ("k1", h / 2)])]},
                    {"t": t + h / 2, "src": "x1", "dst": "k2", "ops": [affine("x1", [("x", 1.0), ("k2", h / 2)])]},
                    {"t": t + h / 2, "src": "x1", "dst": "k3", "ops": [affine("x1", [("x", 1.0), ("k3", h)])]},
                    {"t": t + h, "src": "x1", "dst": "k4", "ops": [
                        affine("x", [("x", 1.0), ("k1", h / 6), ("k2", h / 3), ("k3", h / 3), ("k4", h / 6)])]}]
    regs = {"euler": ["x", "k1"], "heun": ["x", "k1", "x1", "k2"],
            "rk4": ["x", "k1", "x1", "k2", "k3", "k4"]}[method]
    return Plan(method, {"steps": steps}, regs, [affine("x", [], 1.0)], out, "x")


def _register(method: str, summary: str) -> None:
    register("flow", method, default_steps=20, summary=summary)(
        lambda generator, steps, opt: compile_flow_solver(method, int(steps or 20)))


_register("euler", "fixed-step Euler, 1 call per step")
_register("heun", "Heun (2nd order), 2 calls per step")
_register("rk4", "classic Runge-Kutta (4th order), 4 calls per step")
