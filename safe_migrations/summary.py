"""``python -m safe_migrations.summary FILE``: the steps of a revision, destructive ones flagged.

``init_migration.sh`` prints it for every new revision. The classification is
:mod:`safe_migrations.steps`, the same one lint and the gates use.
"""

from __future__ import annotations

import sys

from safe_migrations.steps import Step, reviewed_destructive, steps


def describe(step: Step) -> str:
    """One summary line for one step."""
    flags = []
    if step.destructive:
        flags.append(f"destructive: {step.why}")
    if step.concurrent:
        flags.append("outside the transaction")
    return f"  - {step.describe()}" + (f"  ({'; '.join(flags)})" if flags else "")


def main(argv: list[str]) -> int:
    """Print one line per upgrade step; returns the exit code."""
    if len(argv) != 1:
        print("usage: python -m safe_migrations.summary REVISION_FILE", file=sys.stderr)
        return 2
    for step in steps(argv[0]):
        print(describe(step))
    reason = reviewed_destructive(argv[0])
    if reason:
        print(f"  reviewed_destructive: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
