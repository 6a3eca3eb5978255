"""Dependencies point down (docs/architecture.md, "Layers"): the core names no interface,
and interfaces read sessions through the service's queries, never its repository."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The composition root and the CLI build the interfaces; everything else in strom/ is core
# (or, strom/web/, an interface of its own).
BUILDERS = ("strom/app.py", "strom/cli/")
INTERFACES = ("strom/web/", "bots/", "tui/")


def _modules(*roots: str) -> list[tuple[str, ast.Module, str]]:
    found = []
    for root in roots:
        for path in sorted((ROOT / root).rglob("*.py")):
            text = path.read_text()
            found.append((path.relative_to(ROOT).as_posix(), ast.parse(text), text))
    return found


def _imports(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):  # also those under `if TYPE_CHECKING:`
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_core_imports_no_interface() -> None:
    upward = [f"{name} imports {module}" for name, tree, _ in _modules("strom")
              if not name.startswith((*BUILDERS, "strom/web/"))
              for module in _imports(tree)
              if module.split(".")[0] in ("bots", "tui") or module.startswith("strom.web")]
    assert upward == []


def test_interfaces_do_not_reach_into_repositories() -> None:
    reach = re.compile(r"\.repo\.|\bsessions\.repo\b|\bsvc\.db\b|services\(request\)\.db")
    found = [f"{name}:{number}: {line.strip()}" for name, _, text in _modules(*INTERFACES)
             for number, line in enumerate(text.splitlines(), 1) if reach.search(line)]
    assert found == []
