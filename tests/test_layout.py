"""The package layout holds: no import cycle, the package map's import rules, pure translation."""

from __future__ import annotations

import ast
import graphlib
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "relay"
MAP_HEADING = "## Package map"
EVERY_ROW_ABOVE = "every row above"
PURE = "relay.translate"
BLOCKED = ("redis", "aiohttp")
CONFIG_ORDER = ("values", "credentials", "sections", "checks", "loading")
"""The config package's modules in the order each may import only the ones before it."""


def module_files() -> dict[str, Path]:
    """Every module of ``relay`` by dotted name (a package by its ``__init__``)."""
    out: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imported(
    name: str, path: Path, node: ast.Import | ast.ImportFrom, known: set[str]
) -> set[str]:
    """The relay modules one import statement names (``from x import y`` counts ``x.y`` when
    ``y`` is a module, else ``x``)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in known}
    base = node.module or ""
    if node.level:
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join([*package, *([node.module] if node.module else [])])
    if base not in known:
        return set()
    return {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names}


def import_graph() -> dict[str, set[str]]:
    """Module → the relay modules it imports anywhere (``TYPE_CHECKING`` and lazy ones too)."""
    files = module_files()
    known = set(files)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                edges |= _imported(name, path, node, known)
        edges.discard(name)
        graph[name] = edges
    return graph


def first_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` (its modules, the first repeated at the end), or []."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return []


def unit(module: str) -> str:
    """The package-map row a module belongs to: ``relay.<first part>`` (or ``relay`` itself)."""
    return ".".join(module.split(".")[:2])


def package_map() -> dict[str, set[str]]:
    """Row → what it may import, parsed from the table under the map heading of
    docs/architecture.md (the one place the rules are written)."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split(MAP_HEADING, 1)[1].split("\n## ", 1)[0]
    rules: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`relay"):
            continue
        allowed = set(re.findall(r"`(relay[a-z0-9_.]*)`", cells[2]))
        rules[cells[0].strip("`")] = set(rules) if cells[2] == EVERY_ROW_ABOVE else allowed
    return rules


def test_no_import_cycle() -> None:
    """No module of relay imports itself through others, counting TYPE_CHECKING imports."""
    assert first_cycle(import_graph()) == []


def test_package_map_lists_every_package() -> None:
    """The package map has exactly one row per package and top-level module of relay."""
    assert sorted(package_map()) == sorted({unit(name) for name in module_files()})


def test_packages_import_only_what_the_map_allows() -> None:
    """Every import between packages is one the package map's "may import" column allows."""
    rules = package_map()
    forbidden = sorted(
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        for target in targets
        if unit(target) != unit(module) and unit(target) not in rules.get(unit(module), set())
    )
    assert forbidden == []


def test_config_modules_import_only_earlier_ones() -> None:
    """Each module of relay.config imports only the config modules listed before it."""
    graph = import_graph()
    late = sorted(
        f"{name} -> {target}"
        for position, name in enumerate(f"relay.config.{m}" for m in CONFIG_ORDER)
        for target in graph[name]
        if target.startswith("relay.config")
        and target.removeprefix("relay.config.") not in CONFIG_ORDER[:position]
    )
    assert late == []
    assert sorted(n for n in module_files() if n.startswith("relay.config.")) == sorted(
        f"relay.config.{m}" for m in CONFIG_ORDER
    )


BLOCKER = f"""
import importlib, importlib.abc, pkgutil, sys

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError("blocked: " + name)
        return None

sys.meta_path.insert(0, Refuse())
package = importlib.import_module({PURE!r})
names = sorted(m.name for m in pkgutil.iter_modules(package.__path__, {PURE!r} + "."))
for name in names:
    importlib.import_module(name)
print(" ".join(names))
"""


def test_pure_translation_imports_without_redis_or_aiohttp() -> None:
    """Every module of relay.translate imports in a process where redis and aiohttp are refused."""
    done = subprocess.run(
        [sys.executable, "-c", BLOCKER], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.stderr == ""
    expected = sorted(f"{PURE}.{p.stem}" for p in (PACKAGE / "translate").glob("[!_]*.py"))
    assert done.stdout.split() == expected
