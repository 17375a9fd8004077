"""From what a statement did on the sample to what it will do at live size, and who waits for it.

**Duration.** A statement that scans or rewrites tables is timed on the
sample; the same server, during the same rehearsal, processed the sampled
bytes of those tables in that time. At live size it processes the live
bytes (``pg_relation_size`` of the same tables on live) at that
throughput: ``forecast = ms_on_sample * live_bytes / sample_bytes``. A
statement that scans nothing (catalog-only DDL, ``NOT VALID`` constraints)
costs on live what it cost on the sample.

**Stall.** A lock is held until its transaction ends. A statement whose locks
conflict with the app's writes (``ROW EXCLUSIVE``) on a table that exists on
live stalls writers from the moment it takes them until the commit: its own
forecast plus that of the statements after it in the same transaction. The
revision's stall is its largest; outside a transaction (``autocommit_block``)
a statement's stall is its own forecast.

**Who waits.** PostgreSQL's table-level lock conflict table
(https://www.postgresql.org/docs/current/explicit-locking.html), against the
lock each kind of app statement takes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from safe_migrations.rehearse.recorder import MODES, STRENGTH, Recorded

# Which modes each mode conflicts with (PostgreSQL documentation, "Conflicting Lock Modes").
CONFLICTS: dict[str, frozenset[str]] = {
    "ACCESS SHARE": frozenset({"ACCESS EXCLUSIVE"}),
    "ROW SHARE": frozenset({"EXCLUSIVE", "ACCESS EXCLUSIVE"}),
    "ROW EXCLUSIVE": frozenset({"SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"}),
    "SHARE UPDATE EXCLUSIVE": frozenset(
        {"SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"}
    ),
    "SHARE": frozenset(
        {"ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"}
    ),
    "SHARE ROW EXCLUSIVE": frozenset(
        {"ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"}
    ),
    "EXCLUSIVE": frozenset(set(MODES) - {"ACCESS SHARE"}),
    "ACCESS EXCLUSIVE": frozenset(MODES),
}
# The app's statements and the lock each takes on the table it touches.
APP_STATEMENTS = (
    ("reads", "ACCESS SHARE"),  # SELECT
    ("locking reads", "ROW SHARE"),  # SELECT ... FOR UPDATE / FOR SHARE
    ("writes", "ROW EXCLUSIVE"),  # INSERT, UPDATE, DELETE
    ("vacuum", "SHARE UPDATE EXCLUSIVE"),  # (auto)VACUUM, ANALYZE, CREATE INDEX CONCURRENTLY
)
WRITES = "ROW EXCLUSIVE"


def blocked_by(mode: str) -> list[str]:
    """The app's statements a lock in ``mode`` makes wait (``ACCESS EXCLUSIVE``: reads and everything else)."""
    return [name for name, takes in APP_STATEMENTS if takes in CONFLICTS[mode]]


def strongest(locks: Iterable[tuple[str, str]]) -> dict[str, str]:
    """relation -> the strongest mode held on it."""
    found: dict[str, str] = {}
    for relation, mode in locks:
        if relation not in found or STRENGTH[mode] > STRENGTH[found[relation]]:
            found[relation] = mode
    return found


@dataclass
class Forecast:
    """One recorded statement with its forecast at live size."""

    step: Recorded
    forecast_ms: float
    stall_ms: float = 0.0
    waits: dict[str, list[str]] = field(default_factory=dict)  # live table -> app statements that wait

    @property
    def blocks_writes(self) -> bool:
        return any("writes" in kinds for kinds in self.waits.values())

    def as_json(self) -> dict:
        step = self.step
        return {
            "sql": step.sql,
            "locks": [{"relation": relation, "mode": mode} for relation, mode in step.locks],
            "rewrites": step.rewrites,
            "rows": step.rows,
            "ms": round(step.ms, 1),
            "forecast_ms": round(self.forecast_ms, 1),
            "stall_ms": round(self.stall_ms, 1),
            "waits": self.waits,
        }


def duration(step: Recorded, live_sizes: Mapping[str, int]) -> float:
    """The statement's milliseconds at live size (module docstring)."""
    sample = sum(size for name, size in step.scanned.items() if name in live_sizes)
    live = sum(live_sizes[name] for name in step.scanned if name in live_sizes)
    if sample <= 0 or live <= 0:
        return step.ms
    return step.ms * live / sample


def forecast(steps: list[Recorded], live_sizes: Mapping[str, int]) -> list[Forecast]:
    """Each statement with its duration, writer stall and waiting app statements at live size."""
    found = []
    for step in steps:
        waits = {
            relation: blocked
            for relation, mode in strongest(step.locks).items()
            if relation in step.tables and relation in live_sizes and (blocked := blocked_by(mode))
        }
        found.append(Forecast(step, duration(step, live_sizes), waits=waits))
    for index, item in enumerate(found):
        if not item.blocks_writes:
            continue
        held = [item]
        if item.step.in_transaction:  # held until the transaction commits: the revision's end or an autocommit step
            for later in found[index + 1 :]:
                if later.step.revision != item.step.revision or not later.step.in_transaction:
                    break
                held.append(later)
        item.stall_ms = sum(h.forecast_ms for h in held)
    return found
