"""spprof's modules import one another without a cycle: every import counts, at the top, inside
a function or under TYPE_CHECKING, so the layers stay readable from the bottom up (the model
below the exporters, the session below the public face)."""
import ast
from pathlib import Path
from typing import Dict, List, Optional, Set

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "spprof"


def modules(root: Path) -> Dict[str, Path]:
    """Dotted name -> file, for every .py (and .pyi: the native module) under the package."""
    out = {}
    for path in sorted(root.rglob("*.py*")):
        if path.suffix not in (".py", ".pyi"):
            continue
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out.setdefault(".".join(parts), path)
    return out


def imports_of(name: str, path: Path, known: Set[str]) -> Set[str]:
    """The package's modules `name` imports. `from X import a` counts as X.a when that is a
    module, else as X. (The root's __init__, the public face, runs before any module of the
    package: it is an edge only where a module imports it by name.)"""
    is_package = path.name.startswith("__init__.")
    package = name if is_package else name.rpartition(".")[0]
    out: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            targets = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in known else origin for a in node.names]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            wanted = node.args[0].value  # importlib.import_module(".x", __name__): relative to the package
            targets = [package + wanted if wanted.startswith(".") else wanted]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import spprof.x.y` names a module, maybe inside
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
            # Importing a module inside another subpackage runs that subpackage's __init__ first;
            # the packages `name` is inside of are running already.
            parts = target.split(".")
            for n in range(2, len(parts)):
                ancestor = ".".join(parts[:n])
                if not (name + ".").startswith(ancestor + "."):
                    out.add(ancestor)
    return out


def find_cycle(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
    """One import cycle as [a, b, ..., a], or None."""
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    path: List[str] = []

    def visit(node: str) -> Optional[List[str]]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def import_graph(root: Path) -> Dict[str, Set[str]]:
    known = modules(root)
    return {name: imports_of(name, path, set(known)) for name, path in known.items()}


def test_spprof_has_no_import_cycle():
    graph = import_graph(PACKAGE)
    assert {"spprof", "spprof._model", "spprof.formats", "spprof.formats.speedscope"} <= set(graph)
    assert "spprof._model" in graph["spprof.formats.speedscope"]  # the graph does see imports
    assert "spprof.continuous" in graph["spprof"]  # and importlib's
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def test_the_model_imports_no_exporter():
    graph = import_graph(PACKAGE)
    assert not {m for m in graph["spprof._model"] if m.startswith("spprof.formats")}


def write_package(tmp_path, files):
    for rel, text in files.items():
        path = tmp_path / "pkg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path / "pkg"


@pytest.mark.parametrize("files", [
    # model -> exporter -> model, the import inside a function
    {"__init__.py": "", "model.py": "def save():\n    from .formats import speedscope\n",
     "formats/__init__.py": "", "formats/speedscope.py": "from ..model import save\n"},
    # under TYPE_CHECKING, through `from . import name` of the package's __init__
    {"__init__.py": "from .a import f\n", "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
     "    from . import f\ndef f(): pass\n"},
    # only through a subpackage's __init__, which importing any of its modules runs
    {"__init__.py": "", "sub/__init__.py": "from . import one\n", "sub/one.py": "from ..other import x\n",
     "sub/two.py": "import os\n", "other.py": "from .sub import two\nx = 1\n"},
])
def test_the_check_finds_a_cycle(tmp_path, files):
    graph = import_graph(write_package(tmp_path, files))
    assert find_cycle(graph) is not None, graph


def test_the_check_passes_a_layered_package(tmp_path):
    graph = import_graph(write_package(tmp_path, {
        "__init__.py": "from .model import M\nfrom . import formats\n", "model.py": "import os\nclass M: pass\n",
        "formats/__init__.py": "from . import one\n", "formats/one.py": "from ..model import M\n"}))
    assert find_cycle(graph) is None, graph
