"""The package's shape: imports run with the flow of a run, never against it, and in no circle;
the job-file models load neither the HTTP stack nor pyarrow."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "customer_import"

#: Layers from the bottom up: a module may import from its own layer or a lower one.
LAYERS: list[set[str]] = [
    {"version", "hosts", "contracts"},
    {"errors", "schema", "logs", "durable", "threads"},
    {"config"},
    {"source"},
    {"transform"},
    {"send"},
    {"record"},
    {"outputs"},
    {"run"},
    {"scale"},
    {"runner", "console", "scaffold"},
    {"cli", "__main__", "__init__"},
]
#: The sandbox stands apart: a server of its own that knows nothing of the job.
SANDBOX_MAY_IMPORT = {"hosts", "version", "sandbox"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The package's modules ``path`` imports: ``from a import b`` is ``a.b`` when b is one."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            named = {f"{node.module}.{alias.name}" for alias in node.names} & modules
            found.update(named or {node.module})
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found & modules


def _graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: _imports(path, set(paths)) - {name} for name, path in paths.items()}


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(module: str) -> int:
    top = _top(module)
    return next(i for i, layer in enumerate(LAYERS) if top in layer)


def test_every_module_belongs_to_a_layer() -> None:
    unplaced = {_top(m) for m in _graph()} - set().union(*LAYERS) - {"sandbox"}
    assert not unplaced, f"place these in LAYERS: {sorted(unplaced)}"


def test_no_import_runs_against_the_flow() -> None:
    against = [
        f"{module} -> {imported}"
        for module, imports in _graph().items()
        if _top(module) != "sandbox"
        for imported in imports
        if _top(imported) != "sandbox" and _layer(imported) > _layer(module)
    ]
    assert not against


def test_the_sandbox_imports_nothing_of_the_job() -> None:
    graph = _graph()
    leaks = [
        f"{module} -> {imported}"
        for module, imports in graph.items()
        if _top(module) == "sandbox"
        for imported in imports
        if _top(imported) not in SANDBOX_MAY_IMPORT
    ]
    assert not leaks


def test_no_module_imports_itself_through_a_circle() -> None:
    graph = _graph()

    def reaches(start: str, target: str) -> bool:
        seen, stack = set(), list(graph[start])
        while stack:
            module = stack.pop()
            if module == target:
                return True
            if module not in seen:
                seen.add(module)
                stack.extend(graph.get(module, ()))
        return False

    # The package root imports nothing at run time (its names are loaded lazily).
    circles = [m for m in graph if m != "customer_import" and reaches(m, m)]
    assert not circles


@pytest.mark.parametrize(
    ("module", "must_not_load"),
    [
        ("customer_import.config", ("httpx", "aiohttp", "pyarrow", "polars")),
        ("customer_import.contracts", ("httpx", "aiohttp", "pyarrow", "polars", "pydantic")),
        ("customer_import.run.settings", ("httpx", "aiohttp", "pyarrow")),
        ("customer_import.sandbox.cli", ("polars", "httpx", "pydantic")),
    ],
)
def test_a_module_loads_only_what_its_stage_needs(
    module: str, must_not_load: tuple[str, ...]
) -> None:
    code = (
        f"import sys, {module}; print(' '.join(m for m in {must_not_load!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == ""
