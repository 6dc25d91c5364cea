"""The house's structural rules, read from the source: imports point one way, and no module reaches into another's
private names.

Lazy imports inside functions count as much as top-level ones (they are how a cycle hides until the day the import
order changes); only imports under ``if TYPE_CHECKING:`` are left out, because they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "src" / "lanco"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE_ROOT.rglob("*.py"))}


def _is_type_checking_guard(node: ast.If) -> bool:
    test: ast.expr = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _run_time_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that can run, at any depth, skipping ``if TYPE_CHECKING:`` bodies."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking_guard(node):
            for branch in node.orelse:
                visit(branch)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    anchor = module.split(".")
    anchor = anchor if is_package else anchor[:-1]
    anchor = anchor[:len(anchor) - (node.level - 1)]
    return ".".join([*anchor, *([node.module] if node.module else [])])


def _edges(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the lanco modules it imports by name (a package's own ``__init__`` is not counted for
    ``from lanco.x import y``: Python runs it, but it is lazy by design and tested in test_startup)."""
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets: set[str] = set()
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in _run_time_imports(tree):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names if alias.name in modules)
                continue
            base = _absolute(module, node, path.name == "__init__.py")
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in modules:
                    targets.add(submodule)
                elif base in modules:
                    targets.add(base)
        targets.discard(module)
        graph[module] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return components


def _path_between(graph: dict[str, set[str]], start: str, goal: str) -> list[str]:
    queue = [[start]]
    seen = {start}
    while queue:
        path = queue.pop(0)
        for target in sorted(graph.get(path[-1], ())):
            if target == goal:
                return [*path, goal]
            if target not in seen:
                seen.add(target)
                queue.append([*path, target])
    return []


def test_the_package_has_no_import_cycle() -> None:
    graph = _edges(_modules())
    loops = []
    for component in _cycles(graph):
        first = component[0]
        back = next(t for t in sorted(graph[first]) if t in component)
        loop = [first, *_path_between(graph, back, first)[:-1]] if back != first else [first]
        loops.append(" -> ".join([*loop, first]))
    assert not loops, "import cycles:\n" + "\n".join(loops)


def test_the_cycle_finder_finds_a_lazy_cycle(tmp_path: Path) -> None:
    """The rule above must be able to fail: a cycle made only by an import inside a function is found, and one
    made only under ``if TYPE_CHECKING:`` is not."""
    lazy = {"a": {"b"}, "b": {"a"}}
    assert _cycles(lazy) == [["a", "b"]]
    source = ("TYPE_CHECKING = False\nif TYPE_CHECKING:\n    import lanco.b\n"
              "def f():\n    from lanco import c\n")
    imports = _run_time_imports(ast.parse(source))
    assert [ast.unparse(node) for node in imports] == ["from lanco import c"]


def _private_imports(modules: dict[str, Path]) -> list[str]:
    found = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = _absolute(module, node, path.name == "__init__.py")
            if not base.startswith("lanco"):
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{module} imports {base}.{alias.name}")
    return found


def test_no_module_imports_another_modules_private_names() -> None:
    assert _private_imports(_modules()) == []


@pytest.mark.parametrize("module", sorted(_modules()))
def test_no_module_is_much_over_500_lines(module: str) -> None:
    lines = len(_modules()[module].read_text().splitlines())
    assert lines <= 550, f"{module} has {lines} lines: split it by concept"


_WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_APPEND", "O_CREAT", "O_TRUNC")


def _opens_for_writing(tree: ast.AST) -> list[int]:
    """Lines that open a file for writing: ``os.open`` with a writing flag, ``open`` with a writing mode, or an
    ``os.write``."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = ast.unparse(node.func)
        writes_fd = func == "os.open" and any(flag in ast.unparse(node) for flag in _WRITE_FLAGS)
        if func == "os.write" or writes_fd:
            lines.append(node.lineno)
        elif func == "open":
            mode = node.args[1] if len(node.args) > 1 else next(
                (k.value for k in node.keywords if k.arg == "mode"), None)
            if isinstance(mode, ast.Constant) and any(c in str(mode.value) for c in "wax+"):
                lines.append(node.lineno)
    return lines


# The modules that write files, and what they write; cgroup files are written by lanco.cgroups.cgroupfs alone.
_FILE_WRITERS = {
    "lanco.cgroups.cgroupfs": "every cgroup file",
    "lanco.state.record": "task records",
    "lanco.state.config": "namespace configurations",
    "lanco.state.logfile": "task logs",
    "lanco.state.journal": "the namespace's event journal, its lock, the tasks' claim markers",
    "lanco.state.logrotation": "rotated logs",
    "lanco.state.recorddir": "run markers in the task's state directory, its lock files",
    "lanco.launch.spawn": "the pipes to the monitor, the task's log descriptor",
    "lanco.taskstart": "/dev/null, the monitor's standard input and its own stderr",
    "lanco.cli": "/dev/null over a closed standard output",
}


def test_only_the_cgroupfs_module_writes_cgroup_files() -> None:
    unexpected = []
    for module, path in _modules().items():
        if module in _FILE_WRITERS:
            continue
        for line in _opens_for_writing(ast.parse(path.read_text(), filename=str(path))):
            unexpected.append(f"{module}:{line}")
    assert unexpected == [], "files written outside the modules that own them: " + ", ".join(unexpected)
    writers = {module for module, path in _modules().items()
               if _opens_for_writing(ast.parse(path.read_text(), filename=str(path)))}
    assert writers == set(_FILE_WRITERS), "a module in the list writes nothing: take it out"
