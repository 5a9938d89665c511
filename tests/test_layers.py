"""The core's layers stay layers, and plugins live on the plugin API.

Reads every import statement (module level and inside functions) with ``ast``, so a lazy import
inside a function counts as much as one at the top.

* no import circle between eventkit's modules;
* no upward import: a layer imports only from itself and the layers below it (LAYERS);
* a package under ``plugins/`` or ``examples/`` imports from eventkit only ``eventkit.plugin``
  and ``eventkit.plugin.testing``, and only public names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "eventkit"

#: bottom first; a module may import from its own layer and the layers before it
LAYERS = ("base", "data", "engine", "components", "rundir", "training", "running")
#: the top: entry points and the public namespaces, which may import anything below
TOP = ("plugin", "bench", "__init__", "__main__", "sweep")
PLUGIN_API = ("eventkit.plugin", "eventkit.plugin.testing")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(target: str) -> str:
    """``eventkit.base.reproducible`` -> itself when it is a module or package of the core, else
    the longest prefix that is (``eventkit.engine.EventpropNet`` -> ``eventkit.engine``)."""
    parts = target.split(".")
    while parts:
        path = ROOT.joinpath(*parts)
        if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
            return ".".join(parts)
        parts.pop()
    return target


def imports_of(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, names, line) for every ``import``/``from ... import`` in the file, relative
    imports resolved against the file's package."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.append((base, [alias.name for alias in node.names], node.lineno))
    return found


def core_edges() -> dict[str, set[str]]:
    """module -> the eventkit modules it imports (``from pkg import submodule`` counts as the
    submodule)."""
    edges: dict[str, set[str]] = {}
    for path in CORE.rglob("*.py"):
        module = _module_name(path)
        targets = edges.setdefault(module, set())
        for base, names, _ in imports_of(path):
            if base != "eventkit" and not base.startswith("eventkit."):
                continue
            resolved = [_resolve(f"{base}.{name}") for name in names] or [_resolve(base)]
            targets.update(t for t in resolved if t != module)
    return edges


def _layer(module: str) -> int:
    parts = module.split(".")
    head = parts[1] if len(parts) > 1 else "__init__"
    if head in LAYERS:
        return LAYERS.index(head)
    assert head in TOP, f"{module}: not in a known layer; add its package to LAYERS or TOP in {__file__}"
    return len(LAYERS)


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle in ``edges`` (as a path that returns to its start), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_core_has_no_import_circle():
    cycle = find_cycle(core_edges())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_no_layer_imports_from_a_layer_above_it():
    upward = [
        f"{module} ({LAYERS[_layer(module)] if _layer(module) < len(LAYERS) else 'top'}) imports {target}"
        for module, targets in core_edges().items()
        for target in targets
        if target.startswith("eventkit") and _layer(target) > _layer(module)
    ]
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def test_the_checker_sees_a_circle_and_an_upward_import():
    # the checks above would pass vacuously if the graph came out empty or the layer map wrong
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    edges = core_edges()
    assert "eventkit.running.config" in edges["eventkit.running.pipeline"]
    assert "eventkit.base.errors" in edges["eventkit.running.config"]
    assert _layer("eventkit.running.pipeline") > _layer("eventkit.training.loop") > _layer("eventkit.engine.network")
    assert _layer("eventkit.engine.network") > _layer("eventkit.base.errors")


def _outside_files() -> list[Path]:
    files = []
    for folder in (ROOT / "plugins", ROOT / "examples"):
        files += [p for p in folder.rglob("*.py") if not any(part.startswith(".") for part in p.parts)]
    return files


def plugin_api_violations(path: Path) -> list[str]:
    problems = []
    for base, names, line in imports_of(path):
        if base != "eventkit" and not base.startswith("eventkit."):
            continue
        where = f"{path.relative_to(ROOT)}:{line}"
        if base not in PLUGIN_API:
            problems.append(f"{where}: imports {base} (use eventkit.plugin)")
        problems += [f"{where}: imports the private name {name}" for name in names if name.startswith("_")]
    return problems


def test_plugins_and_examples_import_only_the_plugin_api():
    files = _outside_files()
    assert len(files) > 20  # the four plugins and the example are there
    problems = [p for path in files for p in plugin_api_violations(path)]
    assert not problems, "\n".join(problems)


def test_the_plugin_api_check_catches_an_internal_import(tmp_path):
    bad = ROOT / "plugins" / "_layer_probe.py"
    bad.write_text("from eventkit.engine.neurons import check_positive\nfrom eventkit.plugin import _x\n")
    try:
        problems = plugin_api_violations(bad)
    finally:
        bad.unlink()
    assert len(problems) == 2 and "eventkit.engine.neurons" in problems[0] and "_x" in problems[1]


@pytest.mark.parametrize("name", __import__("eventkit.plugin", fromlist=["__all__"]).__all__)
def test_every_plugin_api_name_resolves(name):
    import eventkit.plugin

    assert getattr(eventkit.plugin, name) is not None
