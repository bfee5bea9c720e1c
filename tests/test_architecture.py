"""The package's shape, read from its own imports with `ast`: no import cycles between modules, each
layer importing only the layers below it (the table in README's "How the package is built", read from
README itself: the one list of the layers), at most 12 entries at the package's top, every module name used once, and no
import of convtrain's own modules inside a function unless a `# deferred: why` comment explains it.

    pytest tests/test_architecture.py -q
    python tests/test_architecture.py        # prints the figures: modules at the top level, cycles, deferred imports
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "convtrain"

README = PACKAGE.parents[1] / "README.md"


def readme_layers() -> list[tuple[str, ...]]:
    """The layers, bottom to top, from README's table in "How the package is built": the one list of
    them. A unit is a first-level folder of the package (or __init__); it may import units of lower
    rank only (and itself). Units on one row share a rank and may not import each other."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### How the package is built") :]
    table = section[section.index("| layer |") :].split("\n\n")[0]
    layers = []
    for row in table.splitlines()[2:]:
        first_cell = row.split("|")[1]
        names = re.findall(r"`(\w+)/`|`(__init__)\.py`", first_cell)
        layers.append(tuple(folder or init for folder, init in names))
    top = layers[-1] + ("__main__",)  # python -m convtrain: the CLI's entry, beside the API
    return [*layers[:-1], top]


LAYERS = readme_layers()


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, dotted
    target: str  # the imported module, dotted
    line: int
    in_function: bool
    explained: bool  # a `# deferred:` comment on the line or the one above


def module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _resolve(dotted: str, modules: dict[str, Path]) -> str | None:
    while dotted and dotted not in modules:
        dotted = dotted.rpartition(".")[0]
    return dotted or None


def _function_nodes(tree: ast.AST) -> set[int]:
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            inside.update(id(child) for child in ast.walk(node) if child is not node)
    return inside


def own_imports() -> list[Import]:
    """Every import of a convtrain module, wherever it stands (top level, function, TYPE_CHECKING)."""
    modules = module_names()
    found = []
    for name, path in modules.items():
        source = path.read_text()
        lines = source.splitlines()
        tree = ast.parse(source)
        inside = _function_nodes(tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(parent + ([base] if base else []))
                # `from pkg import submodule` imports the submodule; `from module import name` the module
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            for target in targets:
                if not target.startswith("convtrain"):
                    continue
                resolved = _resolve(target, modules)
                if resolved is None or resolved == name:
                    continue
                comment = " ".join(lines[max(0, node.lineno - 2) : node.lineno])
                found.append(
                    Import(name, resolved, node.lineno, id(node) in inside, "# deferred:" in comment)
                )
    return found


def cycles(imports: list[Import]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        graph.setdefault(imp.source, set()).add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
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
            visit(node)
    return components


def unit(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def rank(name: str) -> int:
    for position, layer in enumerate(LAYERS):
        if name in layer:
            return position
    raise AssertionError(f"{name} is in no layer: add it to README's table in 'How the package is built'")


def upward_imports(imports: list[Import]) -> list[str]:
    wrong = []
    for imp in imports:
        source, target = unit(imp.source), unit(imp.target)
        line = f"{imp.source}:{imp.line} imports {imp.target} ({source} may not import {target})"
        if source != target and rank(target) >= rank(source) and line not in wrong:
            wrong.append(line)
    return wrong


def test_no_import_cycles():
    assert cycles(own_imports()) == []


def test_every_unit_sits_in_a_layer():
    units = {unit(name) for name in module_names()}
    for name in units:
        rank(name)
    assert units - {"__main__"} <= {name for layer in LAYERS for name in layer}


def test_the_package_top_is_the_layers_and_nothing_else():
    """`ls src/convtrain` is the architecture: the layer folders, __init__.py and __main__.py."""
    entries = {p.name for p in PACKAGE.iterdir() if p.name != "__pycache__"}
    folders = {name for layer in LAYERS for name in layer} - {"__init__", "__main__"}
    assert entries == folders | {"__init__.py", "__main__.py"}
    assert len(folders) <= 12


def test_every_module_name_is_used_once():
    """One basename, one job: no two modules of the package share a file name (`__init__` aside), so
    a name in a traceback, a test file's name or a conversation points at one file."""
    names = [p.name for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"]
    repeated = sorted({name for name in names if names.count(name) > 1})
    assert repeated == []


def test_the_tests_mirror_the_package():
    """A test of a layer's module lives in tests/<layer>/; only this whole-package test and the shared
    helpers (conftest.py, helpers.py, file writers) sit at the top of tests/."""
    tests = Path(__file__).resolve().parent
    folders = {p.name for p in tests.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders and folders <= {name for layer in LAYERS for name in layer}
    assert [p.name for p in tests.glob("test_*.py")] == ["test_architecture.py"]
    for folder in folders:
        assert not (tests / folder / "__init__.py").exists()  # so no test file name may repeat:
    names = [p.name for p in tests.glob("*/test_*.py")]
    assert len(names) == len(set(names))


def test_readme_lists_every_layer_once_bottom_to_top():
    names = [name for layer in LAYERS for name in layer]
    assert len(names) == len(set(names)) and LAYERS[0] == ("base",) and LAYERS[-1][0] == "__init__"


def test_each_layer_imports_only_the_layers_below():
    assert upward_imports(own_imports()) == []


def test_function_level_imports_of_own_modules_say_why():
    hidden = [
        f"{imp.source}:{imp.line} imports {imp.target}"
        for imp in own_imports()
        if imp.in_function and not imp.explained
    ]
    assert hidden == []


def test_the_checks_catch_a_cycle_and_an_upward_import():
    """The checks themselves can fail: a made-up cycle and a made-up upward import are found."""
    made_up = [
        Import("convtrain.data.dataset_registry", "convtrain.data.spec", 1, False, False),
        Import("convtrain.data.spec", "convtrain.data.dataset_registry", 1, True, False),
        Import("convtrain.models.model_registry", "convtrain.config.train_config", 1, False, False),
    ]
    assert cycles(made_up) == [["convtrain.data.dataset_registry", "convtrain.data.spec"]]
    assert upward_imports(made_up) == [
        "convtrain.models.model_registry:1 imports convtrain.config.train_config (models may not import config)"
    ]


if __name__ == "__main__":
    imports = own_imports()
    top = [p for p in PACKAGE.iterdir() if p.suffix == ".py" and p.name != "__init__.py"]
    print(f"modules at the top level: {len(top)}")
    print(f"import cycles: {len(cycles(imports))}  {cycles(imports)}")
    deferred = {(i.source, i.line): i.explained for i in imports if i.in_function}
    unexplained = sum(not explained for explained in deferred.values())
    print(f"function-level import statements of own modules: {len(deferred)} ({unexplained} unexplained)")
    print(f"upward imports: {len(upward_imports(imports))}")
    for line in upward_imports(imports):
        print("  ", line)
