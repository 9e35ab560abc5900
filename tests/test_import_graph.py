"""The package's import graph has no cycle (dev/import_graph.py): none among module-level imports, and none once the
imports inside functions (which run only when called) are added."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "dev" / "import_graph.py"


def _graph_module():
    spec = importlib.util.spec_from_file_location("import_graph", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_no_module_level_import_cycle():
    ig = _graph_module()
    top, _ = ig.graphs()
    assert "judgefactory.generate" in top and "judgefactory.models" in top  # the walk found the package
    assert "judgefactory.precision" in top["judgefactory.generate"]
    assert ig.module_cycles() == []


def test_no_import_cycle_through_imports_inside_functions():
    ig = _graph_module()
    top, lazy = ig.graphs()
    assert ig.cycles({m: top[m] | lazy[m] for m in top}) == []


def test_the_check_finds_a_cycle(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("from .sub.c import thing\n")
    (pkg / "sub" / "c.py").write_text("from ..a import x\n\ndef f():\n    from .. import d\n")
    (pkg / "d.py").write_text("import pkg.sub.c\n")
    (pkg / "e.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n")
    ig = _graph_module()
    top, lazy = ig.graphs(pkg)
    assert top["pkg.a"] == {"pkg.b"} and top["pkg.sub.c"] == {"pkg.a", "pkg.sub"} and lazy["pkg.sub.c"] == {"pkg.d"}
    assert top["pkg.e"] == set()  # TYPE_CHECKING imports never run
    assert ig.cycles(top) == [["pkg.a", "pkg.b", "pkg.sub.c"]]
    both = {m: top[m] | lazy[m] for m in top}
    assert ig.cycles(both) == [["pkg.a", "pkg.b", "pkg.d", "pkg.sub.c"]]
