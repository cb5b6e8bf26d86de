"""Imports go one way: numerics < ir < frontend | quant | passes < codegen < tools < compile < cli
(the import-linter contract in pyproject.toml), and no function-local import hides a cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_linter_contract_is_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    r = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "1 kept, 0 broken" in r.stdout


def _local_compiler_imports(tree: ast.AST) -> list[int]:
    """Lines of `compiler` imports inside functions (outside `if TYPE_CHECKING:`)."""
    found: list[int] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, True)
                continue
            if isinstance(child, ast.ImportFrom) and in_function:
                if (child.module or "").split(".")[0] == "compiler":
                    found.append(child.lineno)
            elif isinstance(child, ast.Import) and in_function:
                if any(a.name.split(".")[0] == "compiler" for a in child.names):
                    found.append(child.lineno)
            visit(child, in_function)

    visit(tree, False)
    return found


def test_no_function_local_imports_of_the_compiler() -> None:
    offenders = []
    for path in sorted((ROOT / "compiler").rglob("*.py")):
        for line in _local_compiler_imports(ast.parse(path.read_text())):
            offenders.append(f"{path.relative_to(ROOT)}:{line}")
    assert not offenders, f"function-local imports (a hidden cycle?): {offenders}"


def test_the_local_import_check_sees_one() -> None:
    tree = ast.parse("def f():\n    from compiler.ir import graph\n    return graph\n")
    assert _local_compiler_imports(tree) == [2]
