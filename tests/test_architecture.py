"""The schema toolset stands alone: it imports nothing from the service."""

from __future__ import annotations

import ast

from tests.helpers import REPO

SERVICE_MODULES = {"app", "models", "weather"}


def imported_modules(path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_toolset_does_not_import_the_service():
    offenders = {
        path.name: imported_modules(path) & SERVICE_MODULES for path in (REPO / "safe_migrations").glob("*.py")
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_check_can_see_an_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from weather.config import load_config\nimport models\n")
    assert imported_modules(sample) & SERVICE_MODULES == {"weather", "models"}
