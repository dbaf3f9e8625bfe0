"""Typed configuration: nested dataclasses <-> JSON dicts <-> CLI flags.

A recipe's config is a dataclass whose fields are sections (dataclasses) or plain
values. ``to_dict``/``from_dict`` round-trip it through JSON (stored next to the
checkpoint); ``add_flags``/``apply_flags`` derive ``--section.field VALUE`` flags.
"""
from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from edgegen.errors import EdgegenError


def parse_choices(text: str, choices, what: str) -> list[str]:
    """A comma list of names from ``choices`` (lower-cased, duplicates dropped, order kept);
    one-line errors name ``what`` and the choices."""
    names = [f.strip().lower() for f in text.split(",") if f.strip()]
    if not names:
        raise EdgegenError(f"no {what} given (choose from {', '.join(choices)})")
    for f in names:
        if f not in choices:
            raise EdgegenError(f"unknown {what} '{f}' (choose from {', '.join(choices)})")
    return list(dict.fromkeys(names))


def to_dict(cfg: Any) -> dict:
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            out[f.name] = to_dict(v)
        elif isinstance(v, tuple):
            out[f.name] = list(v)
        else:
            out[f.name] = v
    return out


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise EdgegenError(f"config field {where} must be an object")
        return from_dict(tp, value, where + ".")
    if origin is tuple:
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise EdgegenError(f"config field {where} must be a list")
        return tuple(_coerce(item_tp, v, where) for v in value)
    if tp is bool:
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise EdgegenError(f"config field {where} must be true or false, got {value!r}")
        return bool(value)
    if tp in (int, float, str):
        try:
            if tp is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return tp(value)
        except (TypeError, ValueError):
            raise EdgegenError(f"config field {where} must be {tp.__name__}, got {value!r}") from None
    return value


def from_dict(cls: type, data: dict, prefix: str = "") -> Any:
    """Build ``cls`` from a dict, checking names and types; missing fields keep defaults."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise EdgegenError(f"unknown config field(s): {', '.join(prefix + u for u in sorted(unknown))}")
    kwargs = {k: _coerce(hints[k], v, prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def _leaf_fields(cls: type, prefix: str = ""):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from _leaf_fields(tp, prefix + f.name + ".")
        else:
            yield prefix + f.name, tp


def add_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add ``--section.field`` for every leaf field of ``cls`` (default: keep the preset)."""
    group = parser.add_argument_group("config overrides (applied on top of the preset)")
    for name, tp in _leaf_fields(cls):
        args = typing.get_args(tp)
        shown = f"{args[0].__name__},..." if typing.get_origin(tp) is tuple else getattr(tp, "__name__", str(tp))
        group.add_argument(f"--{name}", dest=f"cfg:{name}", default=None, metavar=shown.upper())


def apply_flags(cfg: Any, args: argparse.Namespace) -> Any:
    """Return a copy of ``cfg`` with every ``--section.field`` the user gave applied."""
    data = to_dict(cfg)
    for key, value in vars(args).items():
        if not key.startswith("cfg:") or value is None:
            continue
        node = data
        *path, leaf = key[4:].split(".")
        for p in path:
            node = node[p]
        node[leaf] = value
    return from_dict(type(cfg), data)
