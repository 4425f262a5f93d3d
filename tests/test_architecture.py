"""The package's shape: the layer contract (import-linter, configured in pyproject.toml), no
private names across modules, library imports at module level, modules of a readable size."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from testkit import REPO_ROOT

SRC = REPO_ROOT / "src"
PACKAGE = SRC / "s2ssl"

MAX_LINES = 500


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out.append((name, path))
    return out


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def test_the_layer_contract_holds() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--config", str(REPO_ROOT / "pyproject.toml"), "--no-cache"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout, done.stdout


def test_no_private_name_is_imported_from_another_module() -> None:
    crossing = []
    for module, path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                source = _absolute(module, path, node)
                if source.split(".")[0] != "s2ssl":
                    continue
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        crossing.append(f"{module} imports {alias.name} from {source}")
    assert crossing == []


def test_library_modules_import_the_library_at_module_level() -> None:
    """Function-level imports of ``s2ssl`` hide cycles; only the CLI may defer them (its
    ``--help`` must not load torch and friends)."""
    lazy = []
    for module, path in _modules():
        if module == "s2ssl.cli" or module.startswith("s2ssl.cli."):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {id(node) for node in tree.body}
        for node in tree.body:  # `if TYPE_CHECKING:` imports are module-level too
            if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
                top.update(id(child) for child in node.body)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom | ast.Import) and id(node) not in top:
                names = (
                    [_absolute(module, path, node)]
                    if isinstance(node, ast.ImportFrom)
                    else [a.name for a in node.names]
                )
                if any(n.split(".")[0] == "s2ssl" for n in names):
                    lazy.append(f"{module}:{node.lineno} imports {names[0]}")
    assert lazy == []


@pytest.mark.parametrize(("module", "path"), _modules(), ids=[m for m, _ in _modules()])
def test_modules_stay_readable(module: str, path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines: split it by job"


def test_relative_imports_resolve_the_way_python_does() -> None:
    """The checks above see ``from ..io import _x`` as an import from ``s2ssl.io``."""
    path = PACKAGE / "data" / "store.py"
    node = ast.parse("from ..io import _x").body[0]
    assert isinstance(node, ast.ImportFrom)
    assert _absolute("s2ssl.data.store", path, node) == "s2ssl.io"
    init = PACKAGE / "data" / "__init__.py"
    node = ast.parse("from .store import y").body[0]
    assert isinstance(node, ast.ImportFrom)
    assert _absolute("s2ssl.data", init, node) == "s2ssl.data.store"
