"""YAML loading that remembers where every key and value sits, so errors can name the line.

`load_with_lines(path)` returns the plain data and a `LineMap` that resolves a field path
(``("parameters", "k_sei", "prior", "low")``) to the 1-based line of the deepest node that exists.

Hostile files are rejected before any Python object is built (issue 18): a study file is at most
`MAX_STUDY_BYTES`; its text nesting (checked on the parser's event stream, which does not recurse) is at
most `MAX_YAML_DEPTH`; and the node graph that `yaml.compose` returns — where an alias is the anchored
node itself, so nothing is expanded yet — must expand (aliases and ``<<`` merges followed, as the
validators and hashes will see it) to at most `MAX_YAML_NODES` nodes and `MAX_YAML_DEPTH` levels, with
no recursive alias. A "billion laughs" file of a few hundred bytes is rejected in milliseconds.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from risk.errors import StudyError

#: size of a study file [bytes]; real studies are a few kB
MAX_STUDY_BYTES = 2**20
#: nesting of mappings/sequences, in the text and after following aliases; real studies reach 5
MAX_YAML_DEPTH = 64
#: nodes after expanding aliases and merge keys; real studies have a few hundred
MAX_YAML_NODES = 100_000


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
    size = path.stat().st_size
    if size > MAX_STUDY_BYTES:
        raise StudyError(f"study file of {size:,} bytes, more than MAX_STUDY_BYTES={MAX_STUDY_BYTES:,}",
                         path=path, field="size")
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        _check_nesting(text, path)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        _check_expansion(node, path)
        data = yaml.safe_load(text)
    except StudyError:
        raise
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        raise StudyError(f"YAML syntax error: {err.problem or err.context}",
                         path=path, line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as err:
        raise StudyError(f"YAML error: {err}", path=path) from None
    except (ValueError, OverflowError, RecursionError) as err:  # e.g. an integer of > 4300 digits
        raise StudyError(f"YAML value rejected: {str(err).split(';')[0]}", path=path) from None
    if data is None:
        raise StudyError("empty study file", path=path, line=1)
    if not isinstance(data, dict):
        raise StudyError(f"a study is a YAML mapping of sections, got a {type(data).__name__}", path=path, line=1)
    return data, LineMap(node)


def _check_nesting(text: str, path: Path) -> None:
    """Text nesting depth from the event stream (PyYAML's parser is iterative; its composer recurses)."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise StudyError(f"nested more than MAX_YAML_DEPTH={MAX_YAML_DEPTH} levels deep",
                                 path=path, line=event.start_mark.line + 1, field="nesting")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for kv in node.value for n in kv]
    return []


def _check_expansion(root: yaml.Node | None, path: Path) -> None:
    """Expanded size and depth of the composed node graph (memoised per node, iterative, cycle-safe)."""
    if root is None:
        return
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            on_path.discard(key)
            if size[key] > MAX_YAML_NODES or depth[key] > MAX_YAML_DEPTH:
                line = node.start_mark.line + 1
                what = (f"expands to more than MAX_YAML_NODES={MAX_YAML_NODES:,} nodes" if size[key] > MAX_YAML_NODES
                        else f"nests more than MAX_YAML_DEPTH={MAX_YAML_DEPTH} levels")
                raise StudyError(f"the YAML node at line {line} {what} through anchors/aliases (`*name`, `<<:`); "
                                 "write the values out instead", path=path, line=line, field="aliases")
            continue
        if key in size:
            continue
        if key in on_path:
            raise StudyError("recursive alias: a node contains itself", path=path,
                             line=node.start_mark.line + 1, field="aliases")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node) if id(k) not in size)
