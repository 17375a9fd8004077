"""What a revision file does, read from its source (no import, no database)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

# Operations that destroy data or rewrite a table; applying them needs a
# reviewed_destructive = "<reason>" marker in the revision.
DESTRUCTIVE = {"drop_table", "drop_column", "execute_truncate", "alter_column_type"}


def _strings(call: ast.Call) -> list[str]:
    """The leading string arguments, looking into op.f('name') and sa.Column('name', ...)."""
    found = []
    for arg in call.args:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            found.append(arg.value)
        elif isinstance(arg, ast.Call) and _strings(arg):
            found.append(_strings(arg)[0])
        else:
            break
    return found


def _first_string(call: ast.Call) -> str | None:
    strings = _strings(call)
    return strings[0] if strings else None


# Operations whose first two arguments are (table, column).
_COLUMN_OPERATIONS = {"add_column", "drop_column", "alter_column"}


def _operations(function: ast.FunctionDef) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []

    def visit(node: ast.AST, table: str | None) -> None:
        if isinstance(node, ast.With):
            for item in node.items:
                call = item.context_expr
                if isinstance(call, ast.Call) and getattr(call.func, "attr", "") == "batch_alter_table":
                    table = _first_string(call)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id in {"op", "batch_op"} and node.func.attr != "f":
                name = node.func.attr
                strings = _strings(node)
                if name in _COLUMN_OPERATIONS and owner.id == "op" and len(strings) >= 2:
                    target = f"{strings[0]}.{strings[1]}"
                else:
                    target = strings[0] if strings else ""
                if owner.id == "batch_op" and table and name != "batch_alter_table":
                    target = f"{table}.{target}" if target else table
                if name == "execute" and "TRUNCATE" in target.upper():
                    name = "execute_truncate"
                if name == "alter_column" and any(k.arg == "type_" for k in node.keywords):
                    name = "alter_column_type"
                if name != "batch_alter_table":
                    found.append((name, target))
        for child in ast.iter_child_nodes(node):
            visit(child, table)

    for statement in function.body:
        visit(statement, None)
    return found


def operations(path: str | Path, function: str = "upgrade") -> list[tuple[str, str]]:
    """``(operation, target)`` pairs called in the revision's ``upgrade()`` (or ``downgrade()``)."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            return _operations(node)
    return []


def destructive_marker(path: str | Path) -> str | None:
    """The reason given by ``reviewed_destructive = "..."`` in the revision, if any."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(getattr(t, "id", None) == "reviewed_destructive" for t in node.targets)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
            and node.value.value.strip()
        ):
            return node.value.value.strip()
    return None


def destructive_operations(path: str | Path) -> list[tuple[str, str]]:
    """The destructive operations in the revision's ``upgrade()``."""
    return [(name, target) for name, target in operations(path) if name in DESTRUCTIVE]


def main(argv: list[str]) -> int:
    """``python -m safe_migrations.summary FILE``: print one line per operation."""
    if len(argv) != 1:
        print("usage: python -m safe_migrations.summary REVISION_FILE", file=sys.stderr)
        return 2
    for name, target in operations(argv[0]):
        flag = "  (destructive)" if name in DESTRUCTIVE else ""
        print(f"  - {name} {target}{flag}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
