"""One session's run history: every result (zoo, embedder, sweep, upload) is a new entry, never a replacement.

Plain Python, no streamlit: state.py keeps a History in the session and the tests use it directly.
An entry's id ("session:<8 hex>") is random, so a link holding it from another session (or from
before a reload) can never open someone else's run: it is simply not found there.

Memory is bounded by refusing, not by dropping: at most MAX_UNSAVED unsaved runs (jobs still
running count as the runs they will add); beyond that a new job or upload is refused until the
user saves or discards one. Nothing is ever dropped without an explicit action.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from netembed.store import Run

SESSION = "session:"
MAX_UNSAVED = 6  # a 100-model zoo with its embedder holds ~10 MB; six per user keeps a shared server safe


@dataclass
class Entry:
    id: str  # "session:<8 hex>", the picker's value and the URL's run=
    run: Run
    name: str  # shown in the picker, editable; the default save name is its slug
    made_by: str  # "zoo", "embedder", "sweep" or "upload"


class HistoryFull(ValueError):
    """The session holds MAX_UNSAVED unsaved runs: save or discard one first."""


def _fmt(x: float) -> str:
    return f"{x:g}"


FAMILY_SHORT = {"polynomials": "poly", "sines": "sine", "bumps": "bumps"}  # FamilyConfig.kind -> a run name's prefix


def family_name(run: Run) -> str:
    """e.g. 'poly-K10', 'sine-K12', 'bumps2d-K10' (the kind, d where it is not 1, and K)."""
    c = run.family.config
    d = getattr(c, "input_dim", 1)
    return f"{FAMILY_SHORT.get(c.kind, c.kind)}{f'{d}d' if d > 1 else ''}-K{run.family.n_functions}"


def zoo_name(run: Run) -> str:
    """e.g. 'poly-K10 · M20 · 1000 steps · s0'; a cancelled zoo says how far it got ('2800/20000 steps');
    a mixed zoo (mixed_zoo.py) how many architectures it holds ('poly-K10 · 4 archs · M20 · ...')."""
    c = run.zoo.config
    steps = f"{run.zoo.steps_done}" if run.zoo.steps_done == c.steps else f"{run.zoo.steps_done}/{c.steps}"
    n_parts = len(run.zoo.parts) if hasattr(run.zoo, "parts") else 0
    archs = f" · {n_parts} arch{'s' if n_parts > 1 else ''}" if n_parts else ""
    return f"{family_name(run)}{archs} · M{c.models_per_function} · {steps} steps · s{c.seed}"


def embedder_name(run: Run) -> str:
    """e.g. 'poly-K10 · b4 · m0.25 · s0' (bottleneck, mask ratio, embedder seed)."""
    c = run.embedder.config
    name = f"{family_name(run)} · b{c.bottleneck} · m{_fmt(c.mask_ratio)} · s{c.seed}"
    done = run.embedder.steps_done_
    return name if done == c.steps else f"{name} · {done}/{c.steps} steps"


def sweep_name(source: str, rows: list[dict]) -> str:
    ratios = sorted({r["mask_ratio"] for r in rows})
    bottlenecks = sorted({r["bottleneck"] for r in rows})
    seeds = sorted({r.get("seed", 0) for r in rows})
    more = f" × {len(seeds)} seeds" if len(seeds) > 1 else ""
    return f"{source} · sweep {len(ratios)}×{len(bottlenecks)}{more}"


def slug(name: str) -> str:
    """A runs-folder name (store.RUN_NAME) from a display name: 'poly-K10 · b4' -> 'poly-K10_b4'."""
    text = re.sub(r"\s*·\s*", "_", name)
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")
    return (text or "run")[:64]


class History:
    """The session's unsaved runs, oldest first (a run saved to the runs folder leaves the history)."""

    def __init__(self):
        self.entries: dict[str, Entry] = {}

    def unique(self, name: str) -> str:
        taken = {e.name for e in self.entries.values()}
        if name not in taken:
            return name
        n = 2
        while f"{name} ({n})" in taken:
            n += 1
        return f"{name} ({n})"

    def check_room(self, coming: int = 0) -> None:
        """Raise HistoryFull if adding one more run (besides `coming` already on their way) would exceed the bound."""
        if len(self.entries) + coming + 1 > MAX_UNSAVED:
            raise HistoryFull(f"This session holds {len(self.entries)} unsaved runs"
                              f"{f' and {coming} running jobs' if coming else ''} (at most {MAX_UNSAVED}): "
                              "save or discard one in the sidebar before starting another.")  # fmt: skip

    def add(self, run: Run, name: str, made_by: str) -> Entry:
        """A new entry (never replacing one); the bound is checked when a job starts, so a result always fits."""
        entry = Entry(id=SESSION + secrets.token_hex(4), run=run, name=self.unique(name), made_by=made_by)
        self.entries[entry.id] = entry
        return entry

    def get(self, entry_id: str) -> Entry | None:
        return self.entries.get(entry_id)

    def rename(self, entry_id: str, name: str) -> None:
        name = " ".join(name.split())[:80]
        entry = self.entries[entry_id]
        if name and name != entry.name:
            entry.name = self.unique(name)

    def discard(self, entry_id: str) -> None:
        self.entries.pop(entry_id, None)

    def newest_first(self) -> list[Entry]:
        return list(reversed(self.entries.values()))
