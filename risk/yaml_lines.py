"""YAML loading that remembers where every key and value sits, so errors can name the line.

`load_with_lines(path)` returns the plain data and a `LineMap` that resolves a field path
(``("parameters", "k_sei", "prior", "low")``) to the 1-based line of the deepest node that exists.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from risk.errors import StudyError


@dataclass
class LineMap:
    root: yaml.Node | None

    def line(self, loc: tuple) -> int | None:
        """1-based line of the node at ``loc`` (or of its deepest existing ancestor)."""
        node, line = self.root, None
        if node is None:
            return None
        line = node.start_mark.line + 1
        for key in loc:
            child = None
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    if k.value == str(key):
                        child, line = v, k.start_mark.line + 1
                        break
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
                child = node.value[key]
                line = child.start_mark.line + 1
            if child is None:
                break
            node = child
        return line


def load_with_lines(path: str | Path) -> tuple[dict, LineMap]:
    """Parse a YAML mapping; `StudyError` naming file and line on syntax errors, missing or empty files."""
    path = Path(path)
    if not path.is_file():
        raise StudyError("file not found", path=path)
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        raise StudyError(f"YAML syntax error: {err.problem or err.context}",
                         path=path, line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as err:
        raise StudyError(f"YAML error: {err}", path=path) from None
    if data is None:
        raise StudyError("empty study file", path=path, line=1)
    if not isinstance(data, dict):
        raise StudyError(f"a study is a YAML mapping of sections, got a {type(data).__name__}", path=path, line=1)
    return data, LineMap(node)
