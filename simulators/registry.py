"""Simulators registered by name.

Built-in and third-party simulators are declared as entry points in the ``trisk.simulators`` group
(``name = "module:Class"``), so heavy modules (PyBaMM, dolfinx) are imported only when used.
`register` adds a class at run time (tests, notebooks).
"""
from __future__ import annotations

import difflib
import importlib
from importlib.metadata import entry_points

from simulators.base import Simulator

_runtime: dict[str, type[Simulator]] = {}


def register(cls: type[Simulator]) -> type[Simulator]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__qualname__} has no `name`")
    _runtime[cls.name] = cls
    return cls


def _declared() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group="trisk.simulators")}


def available() -> list[str]:
    """Names of every known simulator."""
    return sorted(set(_declared()) | set(_runtime))


def load(name: str) -> type[Simulator]:
    """The simulator class registered as ``name`` (or at ``"module:Class"``); `KeyError` with a did-you-mean otherwise."""
    if name in _runtime:
        return _runtime[name]
    if ":" in name:  # an importable "module:Class" path (plugins under development, tests)
        module, _, attr = name.partition(":")
        return getattr(importlib.import_module(module), attr)
    declared = _declared()
    if name not in declared:
        hint = difflib.get_close_matches(name, available(), n=1)
        msg = f"unknown simulator {name!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
        raise KeyError(msg + f" (available: {', '.join(available())})")
    module, _, attr = declared[name].partition(":")
    return getattr(importlib.import_module(module), attr)
