"""Dependencies point one way: pages -> explorer -> core (STYLE.md rule 2).

Parses every module's imports with `ast` (nothing is executed) and checks:
core never imports the UI stack; pages never import torch and do no tensor math.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def py_files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", py_files("core"), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_has_no_ui_imports(path):
    banned = {"streamlit", "plotly", "explorer", "pages"}
    assert not imported_roots(path) & banned, f"{path} imports {imported_roots(path) & banned}"


@pytest.mark.parametrize("path", py_files("pages"), ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_do_no_tensor_math(path):
    banned = {"torch", "numpy", "scipy", "umap", "sklearn"}
    assert not imported_roots(path) & banned, f"{path} imports {imported_roots(path) & banned}"


@pytest.mark.parametrize("path", py_files("explorer"), ids=lambda p: str(p.relative_to(ROOT)))
def test_explorer_does_not_import_pages(path):
    assert "pages" not in imported_roots(path)


def test_there_is_something_to_check():
    assert py_files("core"), "core/ is empty"
