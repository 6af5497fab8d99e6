"""Stage runner: each stage writes its artefacts and the hash of its inputs; unchanged stages are skipped.

A stage's input hash covers the study sections it reads, the hashes of its upstream stages, the real
data files (for stages that read them), the ``--quick`` flag and the package version. ``stages.json``
in the run directory is the completion record: a stage's entry is removed before it runs and written
only after it succeeded, so an interrupted stage never looks complete and reruns on the next call.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

from rich.console import Console

from risk.study import Study


@dataclass(frozen=True)
class Stage:
    """One pipeline stage.

    sections : study sections whose content the stage depends on.
    upstream : stages whose outputs it reads (their hashes enter its hash).
    artefacts : paths (relative to the run directory) that must exist for a cached result to count.
    reads_data : the real-data files enter the hash.
    """

    name: str
    func: Callable[[RunContext], dict | None]
    sections: tuple[str, ...] = ()
    upstream: tuple[str, ...] = ()
    artefacts: tuple[str, ...] = ()
    reads_data: bool = False
    description: str = ""


@dataclass
class RunContext:
    """What a stage function gets: the study, where to write, and the run options."""

    study: Study
    out: Path
    quick: bool = False
    force: bool = False
    cluster: str | None = None
    console: Console = field(default_factory=lambda: Console(stderr=True))

    def path(self, name: str) -> Path:
        return self.out / name

    @property
    def seed(self) -> int:
        return self.study.study.seed

    def stage_seed(self, stage: str) -> int:
        """A per-stage seed derived from the master seed (stable, independent streams)."""
        return int.from_bytes(hashlib.sha256(f"{self.seed}:{stage}".encode()).digest()[:4], "little")


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def data_hashes(path: Path | None) -> dict[str, str]:
    """SHA-256 of every file under a data path (a file or a folder), keyed by relative path.

    The folder is checked first (`risk.data.limits.check_data_path`): a link pointing outside it, a FIFO
    or a device raises `DataError` instead of being read.
    """
    from risk.data.limits import check_data_path

    if path is None or not path.exists():
        return {}
    check_data_path(path)
    if path.is_file():
        return {path.name: file_digest(path)}
    return {str(p.relative_to(path)): file_digest(p) for p in sorted(path.rglob("*")) if p.is_file()}


class Pipeline:
    """Ordered stages over one run directory.

    Examples
    --------
    >>> Pipeline(STAGES, ctx).run()                 # doctest: +SKIP
    >>> Pipeline(STAGES, ctx).run(only=["ingest"])  # doctest: +SKIP
    """

    def __init__(self, stages: list[Stage], ctx: RunContext):
        self.stages = {s.name: s for s in stages}
        self.ctx = ctx
        self.record_path = ctx.out / "stages.json"
        self._data_hash: str | None = None

    # -- records ------------------------------------------------------------------------------------
    def records(self) -> dict:
        if self.record_path.exists():
            return json.loads(self.record_path.read_text())
        return {}

    def _save(self, records: dict):
        tmp = self.record_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(records, indent=2, sort_keys=True))
        tmp.replace(self.record_path)

    # -- hashing ------------------------------------------------------------------------------------
    def data_hash(self) -> str:
        if self._data_hash is None:
            blob = json.dumps(data_hashes(self.ctx.study.data_path()), sort_keys=True)
            self._data_hash = hashlib.sha256(blob.encode()).hexdigest()
        return self._data_hash

    def input_hash(self, name: str, hashes: dict[str, str]) -> str:
        st = self.stages[name]
        parts = {
            "stage": name,
            "study": self.ctx.study.section_hash("study", *st.sections),
            "upstream": {u: hashes.get(u) for u in st.upstream},
            "data": self.data_hash() if st.reads_data else None,
            "quick": self.ctx.quick,
            "version": version("trisk"),
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    # -- running ------------------------------------------------------------------------------------
    def with_upstream(self, names: list[str]) -> set[str]:
        """``names`` and every stage they depend on, transitively."""
        out, todo = set(), list(names)
        while todo:
            name = todo.pop()
            if name not in out:
                out.add(name)
                todo.extend(self.stages[name].upstream)
        return out

    def run(self, only: list[str] | None = None) -> dict[str, str]:
        """Run the stages (all, or ``only`` those named) in order; returns stage → status.

        With ``only``, the stages they depend on run first where they are missing or stale (as ``make`` does;
        current ones are skipped), and ``--force`` reruns the named stages only."""
        self.ctx.out.mkdir(parents=True, exist_ok=True)
        records = self.records()
        # downstream stages key on their upstream's *output* id, which changes each time a stage
        # really runs (also when forced), so a rerun stage's dependants never stay stale
        hashes = {k: v.get("output", v["hash"]) for k, v in records.items()}
        status: dict[str, str] = {}
        needed = None if only is None else self.with_upstream(list(only))
        for name, st in self.stages.items():
            h = self.input_hash(name, hashes)
            if needed is not None and name not in needed:
                hashes.setdefault(name, h)
                continue
            rec = records.get(name)
            force = self.ctx.force and (only is None or name in only)
            cached = (rec is not None and rec["hash"] == h and not force
                      and all((self.ctx.out / a).exists() for a in rec.get("artefacts", st.artefacts)))
            if cached:
                self.ctx.console.print(f"[dim]✓ {name}: unchanged, skipped[/dim]")
                status[name] = "cached"
                hashes[name] = rec.get("output", h)
                continue
            records.pop(name, None)
            self._save(records)
            self.ctx.console.print(f"[bold]▶ {name}[/bold] {st.description}")
            t0 = time.time()
            summary = st.func(self.ctx) or {}
            output = hashlib.sha256(f"{h}:{time.time_ns()}".encode()).hexdigest()
            records[name] = {"hash": h, "output": output, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                             "seconds": round(time.time() - t0, 3), "summary": summary, "quick": self.ctx.quick,
                             # what this run wrote (a stage with nothing to do, e.g. no scenarios, writes none)
                             "artefacts": [a for a in st.artefacts if (self.ctx.out / a).exists()]}
            self._save(records)
            hashes[name] = output
            status[name] = "ran"
        return status
