"""The schema toolset stands alone: it imports nothing from the service."""

from __future__ import annotations

import ast

from tests.helpers import REPO

SERVICE_MODULES = {"app", "models", "weather"}


def imported_modules(path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
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


def toolset_imports(package) -> dict[str, set[str]]:
    """Module -> the toolset modules it imports (anywhere in it, lazy imports inside functions too).

    Modules are named by their dotted path inside the package (``rehearse.scratch``; a subpackage's
    ``__init__`` is the subpackage itself).
    """
    paths = {
        ".".join(path.relative_to(package).with_suffix("").parts).removesuffix(".__init__"): path
        for path in package.rglob("*.py")
    }
    modules = set(paths) - {"__init__"}
    graph: dict[str, set[str]] = {}
    for name in modules:
        found = set()
        for node in ast.walk(ast.parse(paths[name].read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                inside = node.module.removeprefix(package.name).lstrip(".")
                if node.module.split(".")[0] != package.name:
                    continue
                for alias in node.names:
                    child = f"{inside}.{alias.name}" if inside else alias.name
                    found.add(child if child in modules else inside)
            elif isinstance(node, ast.Import):
                found.update(
                    a.name.removeprefix(f"{package.name}.") for a in node.names if a.name.startswith(f"{package.name}.")
                )
        graph[name] = (found & modules) - {name}
    return graph


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each import circle once, as the path that closes it."""
    circles: list[list[str]] = []
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            circle = path[path.index(name) :]
            if not any(set(circle) == set(known) for known in circles):
                circles.append([*circle, name])
            return
        if name in done:
            return
        for imported in sorted(graph[name]):
            visit(imported, [*path, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
    return circles


def test_the_toolset_has_no_import_circle():
    assert import_circles(toolset_imports(REPO / "safe_migrations")) == []


def test_the_circle_check_sees_a_circle(tmp_path):
    package = tmp_path / "safe_migrations"
    package.mkdir()
    (package / "a.py").write_text("from safe_migrations import b\n")
    (package / "b.py").write_text("def later():\n    from safe_migrations.c import x\n")
    (package / "c.py").write_text("import safe_migrations.a\n")
    (package / "d.py").write_text("from safe_migrations.a import y\n")
    assert import_circles(toolset_imports(package)) == [["a", "b", "c", "a"]]
    (package / "sub").mkdir()
    (package / "sub" / "__init__.py").write_text("from safe_migrations.sub.e import z\n")
    (package / "sub" / "e.py").write_text("from safe_migrations import d\n")
    (package / "d.py").write_text("from safe_migrations.sub import e\n")
    assert import_circles(toolset_imports(package)) == [["a", "b", "c", "a"], ["d", "sub.e", "d"]]


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
