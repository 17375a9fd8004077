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


def weather_imports(module: str) -> set[str]:
    """Every weather.* module ``module`` imports, directly or through others (models and app included)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        path = REPO / (name.replace(".", "/") + ".py")
        if not path.exists():
            path = REPO / name.replace(".", "/") / "__init__.py"
        if name in seen or not path.exists():
            continue
        seen.add(name)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                todo.append(node.module)
                todo.extend(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                todo.extend(alias.name for alias in node.names)
    return {name for name in seen if name.split(".")[0] in SERVICE_MODULES} - {module}


def test_the_fetch_pipeline_imports_no_source():
    """weather.forecast_fetch knows sources only through weather.forecast_source: adding one is adding a module."""
    reached = weather_imports("weather.forecast_fetch")
    assert "weather.forecast_source" in reached and "weather.forecast_store" in reached  # the walk sees imports
    assert {name for name in reached if name.startswith("weather.sources") or name == "weather.kma"} == set()


def test_every_source_module_is_found_by_its_product_name():
    from weather import sources
    from weather.config import load_config
    from weather.forecast_source import ForecastSource

    modules = {path.stem for path in (REPO / "weather" / "sources").glob("*.py") if path.stem != "__init__"}
    assert set(sources.products()) == {"short", "ultra"} == modules
    config = {**load_config({}, "instance"), "KMA_SERVICE_KEY": "key"}
    for product in sources.products():
        source = sources.source_for(product, config)
        assert isinstance(source, ForecastSource) and source.product == product
