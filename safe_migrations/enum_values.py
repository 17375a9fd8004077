"""A new enum value used in the transaction that adds it: PostgreSQL refuses that at apply time.

``ALTER TYPE ... ADD VALUE 'X'`` may run inside a transaction, but until that
transaction commits PostgreSQL refuses every use of ``'X'`` ("unsafe use of
new enum value"). Each revision runs in one transaction, so a revision that
adds a value and uses it (a data migration setting it, a server default)
renders and lints cleanly, then fails on the database. Lint reads the
revision's offline SQL (one transaction per ``BEGIN``/``COMMIT``) and names it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pglast
from pglast import ast
from pglast.enums import TransactionStmtKind

from safe_migrations.statements import split

RULE = "new-enum-value-used-in-same-revision"
FIX = (
    "move the statements that use the value into a separate, later revision "
    "(PostgreSQL accepts a new enum value only after the transaction that added it commits)"
)


@dataclass(frozen=True)
class EarlyUse:
    """A statement that uses ``value``, added to ``enum`` earlier in the same transaction."""

    value: str
    enum: str
    statement: str

    @property
    def message(self) -> str:
        return f"uses enum value {self.value!r}, which this revision adds to {self.enum}: PostgreSQL refuses it"


def early_uses(sql: str) -> list[EarlyUse]:
    """Each statement of ``sql`` that uses an enum value added earlier in its own transaction."""
    added: dict[str, str] = {}
    found = []
    for text in split(sql):
        try:
            parsed = pglast.parse_sql(text)
        except pglast.parser.ParseError:
            continue
        node = parsed[0].stmt if parsed else None
        if isinstance(node, ast.TransactionStmt) and node.kind in (
            TransactionStmtKind.TRANS_STMT_COMMIT,
            TransactionStmtKind.TRANS_STMT_ROLLBACK,
        ):
            added.clear()
        elif isinstance(node, ast.AlterEnumStmt) and node.newVal and not node.oldVal:
            added[node.newVal] = ".".join(part.sval for part in node.typeName or ())
        else:
            for value, enum in added.items():
                if f"'{value}'" in text:
                    found.append(EarlyUse(value, enum, " ".join(text.split())))
    return found
