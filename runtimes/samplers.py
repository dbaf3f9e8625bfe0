"""The typed sampler registry: every plan compiler declares its samplers here.

A sampler is registered for one *process* (the generator stage's ``process``: ddpm, sde,
flow, gan, ...) with an options dataclass whose fields are its only options, each with a
default. ``compile_plan`` is the one entry point every caller uses (the pipeline, export,
calibration, profiling, the CLI): it resolves the sampler, its steps and options, refuses an
option the sampler does not have with one line, and calls the compiler.

    @register("ddpm", "ddim", DDIMOptions, default_steps=50, summary="DDIM (Song et al. 2021)")
    def _ddim(generator: dict, steps: int | None, opt: DDIMOptions) -> Plan: ...

Option values are resolved per field: the caller's value, else the bundle's default
(``generator["defaults"][field]``, model-level settings such as the SDE's ``eps``), else the
dataclass default. Steps: the caller's, else the bundle's default steps when the sampler is
the bundle's default sampler, else the sampler's ``default_steps`` (None: the compiler's own).
ARCHITECTURE.md has a worked example that adds a sampler.
"""
from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

from edgegen.errors import EdgegenError

if TYPE_CHECKING:
    from edgegen.runtimes.plans import Plan

# Modules whose import registers the built-in samplers (looked up lazily, on first use).
BUILTIN_COMPILERS = ("edgegen.runtimes.plans", "edgegen.runtimes.sde_plans", "edgegen.runtimes.flow_plans",
                     "edgegen.runtimes.diffusers_plans", "edgegen.runtimes.sde_fast_plans")


@dataclass(frozen=True)
class NoOptions:
    """A sampler without options."""


@dataclass(frozen=True)
class Sampler:
    process: str
    name: str
    options: type  # a dataclass: its fields are the sampler's options, with defaults
    compile: Callable[[dict, Optional[int], Any], "Plan"]  # (generator section, steps, options) -> Plan
    default_steps: Optional[int] = None
    summary: str = ""

    @property
    def option_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self.options))


_REGISTRY: dict[str, dict[str, Sampler]] = {}
_loaded = False


def register(process: str, name: str, options: type = NoOptions, default_steps: Optional[int] = None,
             summary: str = ""):
    """Decorator: register ``fn(generator, steps, options) -> Plan`` as sampler ``name`` of ``process``."""
    if not dataclasses.is_dataclass(options):
        raise TypeError(f"sampler {name}: options must be a dataclass, got {options!r}")

    def deco(fn):
        _REGISTRY.setdefault(process, {})[name] = Sampler(process, name, options, fn, default_steps, summary)
        return fn
    return deco


def _load_builtin() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in BUILTIN_COMPILERS:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as e:  # an optional compiler module not present in this tree
                if e.name != module:
                    raise


def processes() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def samplers(process: str) -> dict[str, Sampler]:
    """The samplers of ``process`` (name -> Sampler); one line when the process is unknown."""
    _load_builtin()
    if process not in _REGISTRY:
        raise EdgegenError(f"no plan compiler for process {process!r} (known: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[process]


def get_sampler(process: str, name: str) -> Sampler:
    known = samplers(process)
    if name not in known:
        raise EdgegenError(f"unknown sampler '{name}' (choose {', '.join(known)})")
    return known[name]


def resolve_options(sampler: Sampler, given: dict, defaults: dict) -> Any:
    """The options dataclass for this call; an option the sampler does not take is an error."""
    names = sampler.option_names
    wrong = [k for k, v in given.items() if v is not None and k not in names]
    if wrong:
        takes = f"its options: {', '.join(names)}" if names else "it takes no options"
        raise EdgegenError(f"option {', '.join(repr(k) for k in wrong)} does not apply to sampler "
                           f"'{sampler.name}' ({takes})")
    values = {}
    for f in dataclasses.fields(sampler.options):
        v = given.get(f.name)
        if v is None:
            v = defaults.get(f.name)
        if v is not None:
            values[f.name] = v
    return sampler.options(**values)


def compile_plan(generator: dict, sampler: Optional[str] = None, steps: Optional[int] = None,
                 **options) -> "Plan":
    """Compile a plan from a generator stage section (``process``, schedule, ``defaults``).

    ``sampler`` None: the bundle's default sampler. ``options``: the sampler's options by name
    (None = not given)."""
    d = generator.get("defaults", {})
    process = generator.get("process")
    name = sampler or d.get("sampler")
    if name is None:
        raise EdgegenError(f"no sampler given and the bundle names no default (choose "
                           f"{', '.join(samplers(process))})")
    spec = get_sampler(process, name)
    if isinstance(steps, bool) or (steps is not None and (not isinstance(steps, int) or steps <= 0)):
        raise EdgegenError(f"steps must be >= 1, got {steps}")
    if steps is None:
        steps = d.get("steps") if name == d.get("sampler") else spec.default_steps
    return spec.compile(generator, steps, resolve_options(spec, options, d))
