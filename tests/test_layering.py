"""The import graph of the package (every import, including those inside functions): each
layer imports only from the layers below it, and no module takes part in an import cycle."""

import ast
from pathlib import Path

import neurojoule

ROOT = Path(neurojoule.__file__).parent
# what each package may import from the project besides itself (the layering in the README);
# cli/ sits on top and may import any of them
ALLOWED = {
    "util": set(),
    "data": {"util"},
    "neuron": {"util"},
    "energy": {"util", "neuron"},
    "layers": {"util", "neuron", "energy"},
    "models": {"util", "neuron", "energy", "layers", "data"},
    "train": {"util", "neuron", "energy", "layers", "models", "data"},
    "search": {"util", "neuron", "energy", "layers", "models", "data", "train"},
    "bench": {"util", "neuron", "energy", "layers", "models", "data", "train"},
    # exchange formats (NIR): beside train/ and search/, above the models it exports
    "export": {"util", "neuron", "energy", "layers", "models", "data"},
}
PACKAGES = tuple(ALLOWED)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Project modules that `path` imports; `from pkg import name` counts as pkg.name when that
    is a module, else as pkg."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                as_module = ROOT.parent / Path(*candidate.split("."))
                is_module = as_module.with_suffix(".py").exists() or as_module.is_dir()
                found.add(candidate if is_module else node.module)
    return {name for name in found if name.startswith("neurojoule.")}


def _graph() -> dict[str, set[str]]:
    return {
        _module_name(path): _imports(path)
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def test_each_package_imports_only_the_layers_below_it():
    wrong = []
    for module, imported in _graph().items():
        package = module.split(".")[1]
        for name in imported:
            other = name.split(".")[1] if "." in name else ""
            if other != package and other not in ALLOWED[package]:
                wrong.append(f"{module} -> {name}")
    assert wrong == []


def test_no_import_cycles_between_modules():
    graph = _graph()
    # a package's __init__ importing its own modules is the package, not a cycle
    edges = {
        module: {n for n in imported if n in graph and not module.startswith(n + ".")}
        for module, imported in graph.items()
    }
    cycles, state = [], {}  # state: 1 on the current path, 2 done

    def visit(module, path):
        state[module] = 1
        for nxt in sorted(edges[module]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[module] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert cycles == []
