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


def overrides(name: str, method: str) -> bool:
    """Does the simulator registered as ``name`` override ``Simulator.<method>``? Decided from its module's source
    (`ast`) while the module is not imported — the check must not load its heavy stack (dolfinx, PyBaMM) into a
    process that later runs torch or JAX — following base classes defined in the same module; a base imported from
    elsewhere counts as not overriding."""
    import sys

    if name in _runtime or ":" in name or _module_of(name) in sys.modules:
        return getattr(load(name), method) is not getattr(Simulator, method)
    import ast
    from importlib.util import find_spec
    from pathlib import Path

    module, _, attr = _declared()[name].partition(":")
    tree = ast.parse(Path(find_spec(module).origin).read_text())
    classes = {c.name: c for c in tree.body if isinstance(c, ast.ClassDef)}
    todo, seen = [attr], set()
    while todo:
        cls = classes.get(todo.pop())
        if cls is None or cls.name in seen:
            continue
        seen.add(cls.name)
        if any(isinstance(f, ast.FunctionDef) and f.name == method for f in cls.body):
            return True
        todo += [b.id for b in cls.bases if isinstance(b, ast.Name)]
    return False


def _module_of(name: str) -> str | None:
    declared = _declared()
    return declared[name].partition(":")[0] if name in declared else None

