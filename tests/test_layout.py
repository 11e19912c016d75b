"""The house plan holds: every module is one concept of a few hundred lines, and every package
says in one line what lives in it (CONTRIBUTING.md). The layers are checked by lint-imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.tools import ROOT

PACKAGES = ("stream", "consumers", "producers")
#: A module is one concept: about 300 lines, never more than this.
MOST_LINES = 400


def _modules() -> list[Path]:
    return sorted(
        path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if not path.is_symlink() and "monitoring" not in path.parts
    )


def _packages() -> list[Path]:
    return sorted(path for path in _modules() if path.name == "__init__.py")


@pytest.mark.parametrize("module", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_is_a_grab_bag(module: Path) -> None:
    lines = len(module.read_text(encoding="utf-8").splitlines())
    assert lines <= MOST_LINES, f"{module.relative_to(ROOT)}: {lines} lines; split it by concept"


@pytest.mark.parametrize("package", _packages(), ids=lambda p: str(p.parent.relative_to(ROOT)))
def test_every_package_says_what_lives_in_it(package: Path) -> None:
    tree = ast.parse(package.read_text(encoding="utf-8"))
    docstring = ast.get_docstring(tree)
    assert docstring, f"{package.relative_to(ROOT)} has no docstring"
    first = docstring.split("\n\n")[0]
    assert len(first) <= 200, f"{package.relative_to(ROOT)}: say it in one sentence"


@pytest.mark.parametrize("package", _packages(), ids=lambda p: str(p.parent.relative_to(ROOT)))
def test_package_inits_are_thin(package: Path) -> None:
    if package.parent.name == "settings":
        return  # the settings object and its loader are the settings package's own
    tree = ast.parse(package.read_text(encoding="utf-8"))
    code = [node for node in tree.body if not isinstance(node, ast.Expr | ast.Assign)]
    assert code == [], f"{package.relative_to(ROOT)}: keep __init__.py to its docstring"
