"""The import graph of the package: no cycles, the stage rule, and only ``smie.*`` names.

Walks every module's ``import`` statements with ``ast`` (function-level imports included, since a lazy import
still ties the two modules together); ``if TYPE_CHECKING:`` blocks are skipped.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOPS = ("pipeline", "features", "prompts")


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(["smie", *parts])


def _package_files() -> dict[str, Path]:
    files = {_module_name(REPO / "cli.py"): REPO / "cli.py"}
    for top in TOPS:
        for p in (REPO / top).rglob("*.py"):
            files[_module_name(p)] = p
    return files


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[:len(pkg) - node.level + 1]
                base = ".".join(pkg + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    files = _package_files()
    known = set(files)
    return {name: _imports(path, name, known) for name, path in files.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            # a package's __init__ importing its own submodules is how packages re-export; not a cycle edge back
            if state.get(nxt) == 1 and not nxt.startswith(node + "."):
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycles(graph):
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_cycle_finder_finds_a_planted_cycle(graph):
    planted = {k: set(v) for k, v in graph.items()}
    planted["smie.pipeline.zsl.fit"].add("smie.pipeline.zsl.experiment")
    assert _cycle(planted) is not None


def _edges_from(graph, prefix):
    return {(a, b) for a, deps in graph.items() if a.startswith(prefix) for b in deps}


def test_stage_two_imports_no_stage_one_code(graph):
    bad = {(a, b) for a, b in _edges_from(graph, "smie.pipeline.zsl")
           if b.startswith(("smie.pipeline.visual", "smie.pipeline.semantic", "smie.pipeline.tools", "smie.cli"))}
    assert not bad, sorted(bad)


def test_data_layer_imports_only_features(graph):
    bad = {(a, b) for a, b in _edges_from(graph, "smie.pipeline.data")
           if not b.startswith(("smie.pipeline.data", "smie.features"))}
    assert not bad, sorted(bad)


def test_stage_one_sides_do_not_import_each_other_or_stage_two(graph):
    bad = {(a, b) for a, b in _edges_from(graph, "smie.pipeline.visual")
           if b.startswith(("smie.pipeline.semantic", "smie.pipeline.zsl", "smie.pipeline.tools", "smie.prompts"))}
    bad |= {(a, b) for a, b in _edges_from(graph, "smie.pipeline.semantic")
            if b.startswith(("smie.pipeline.visual", "smie.pipeline.zsl", "smie.pipeline.tools"))}
    assert not bad, sorted(bad)


def test_only_smie_names_are_imported():
    """No module reaches for a bare ``pipeline``/``features``/``prompts``/``cli``: those names belong to others."""
    bad = []
    for name, path in _package_files().items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import)
                    else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            bad += [f"{path.relative_to(REPO)}: {m}" for m in mods if m.split(".")[0] in (*TOPS, "cli")]
    assert not bad, bad
