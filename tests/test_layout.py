"""The package's shape: imports flow one way (no cycles), nothing imports a command, and the import
paths the README shows keep working."""

import ast
from pathlib import Path

import nmt

PACKAGE = Path(nmt.__file__).resolve().parent
COMMANDS = {"nmt.prepare", "nmt.train", "nmt.translate", "nmt.score", "nmt.evaluate", "nmt.export", "nmt.serve"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every nmt module and the nmt modules it imports, at the top or inside a function."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from nmt.x import y` imports nmt.x.y when y is a module, else nmt.x.
                imported |= {f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules
                             else node.module for alias in node.names}
        graph[name] = {m for m in imported if m in modules and m != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle as the list of modules on it, or None (depth-first search with three colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_has_no_cycle():
    assert find_cycle(import_graph()) is None


def test_no_module_imports_a_command():
    offenders = {name: sorted(deps & COMMANDS) for name, deps in import_graph().items() if deps & COMMANDS}
    assert offenders == {}


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_top_of_the_package_holds_the_commands_and_a_few_leaves():
    top = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__"}
    leaves = {"errors", "choices", "io", "cli", "device", "translator"}
    assert top == {name.split(".")[1] for name in COMMANDS} | leaves


def test_the_readme_python_api_imports_still_work():
    from nmt.backends import Translator, load_translator
    from nmt.translator import Translator as OldTranslator
    from nmt.translator import load_translator as old_load_translator

    assert OldTranslator is Translator and old_load_translator is load_translator


def test_the_packages_import_each_other_one_way():
    """Collapsed to nmt.<package>, the graph still has no cycle: a package never reaches back up."""
    graph: dict[str, set[str]] = {}
    for name, deps in import_graph().items():
        package = ".".join(name.split(".")[:2])
        graph.setdefault(package, set()).update(".".join(d.split(".")[:2]) for d in deps)
    assert find_cycle({package: deps - {package} for package, deps in graph.items()}) is None
