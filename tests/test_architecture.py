"""The house keeps its shape (issue 23): no import circle, and no module imports from a
floor above its own, or sideways into another entity on its floor.

Read from the code itself with `ast`, every import (also those inside functions, which run
later but are dependencies all the same). The floors are docs/architecture.md's map, top
first; a module's floor is that of its longest matching prefix."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "preserve"

FLOORS = [  # top first; on one floor, each name is a room the others do not enter
    ["preserve.__main__"],
    ["preserve.cli"],
    ["preserve.render"],
    ["preserve.admin"],
    ["preserve.ingest", "preserve.data", "preserve.planning", "preserve.access"],
    ["preserve.storage"],
    ["preserve.repository", "preserve.pipeline"],
    ["preserve.catalog", "preserve.stores"],
    ["preserve.system", "preserve.parallel"],
    ["preserve.domain"],
    ["preserve.errors", "preserve"],
]


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The preserve modules `name` imports (a name imported from a package counts as its
    module where it is one, else as the package)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "preserve"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "preserve":
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}"
                out.add(full if full in known else base)
    out.discard(name)
    return out


def room(name: str) -> tuple[int, str]:
    """(floor, room) of a module: floor 0 is the top."""
    best = None
    for floor, rooms in enumerate(FLOORS):
        for prefix in rooms:
            if (name == prefix or name.startswith(prefix + ".")) and \
                    (best is None or len(prefix) > len(best[1])):
                best = (floor, prefix)
    assert best is not None, f"{name} is on no floor of the map: add it to FLOORS and the docs"
    return best


GRAPH = {name: imports(name, path, modules()) for name, path in modules().items()}


def test_every_module_is_on_the_map():
    for name in GRAPH:
        room(name)


def test_no_module_imports_upward_or_into_another_room_of_its_floor():
    wrong = []
    for name, deps in sorted(GRAPH.items()):
        floor, here = room(name)
        for dep in sorted(deps):
            dep_floor, there = room(dep)
            if dep_floor < floor or (dep_floor == floor and there != here):
                wrong.append(f"{name} imports {dep} ({there}, floor {dep_floor}; "
                             f"{name} is in {here}, floor {floor})")
    assert not wrong, "\n".join(wrong)


def test_no_import_circle():
    circles, done = [], set()

    def visit(name: str, path: list[str]) -> None:
        for dep in sorted(GRAPH.get(name, ())):
            if dep in path:
                circles.append(" -> ".join(path[path.index(dep):] + [dep]))
            elif dep not in done:
                visit(dep, path + [dep])
        done.add(name)

    for name in sorted(GRAPH):
        if name not in done:
            visit(name, [name])
    assert not circles, "\n".join(circles)


LONGEST = 550  # lines: "no module over about 500" (issue 23); split by concern past it


def test_every_module_says_what_it_is_for_and_stays_small():
    for name, path in sorted(modules().items()):
        text = path.read_text()
        assert ast.get_docstring(ast.parse(text)), f"{name} does not open with what it is for"
        lines = text.count("\n")
        assert lines <= LONGEST, f"{name} has {lines} lines: split it by concern"
