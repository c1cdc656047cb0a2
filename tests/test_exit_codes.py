"""Exit codes exist only in mixbench/cli/: the library returns results and raises typed exceptions,
and the command line alone turns them into 2 (bad input), 3 (diverged) and 130 (interrupted).
Checked on the source of every other module (each exit call, name, comparison and entry function),
so a code creeping back into the library fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("mixbench", "algorithms", "tasks", "embedders", "theory")
CLI = ROOT / "mixbench" / "cli"
EXIT_CODES = {2, 3, 130}
EXITING = {"sys.exit", "exit", "quit", "SystemExit", "os._exit"}
# A function named like a program's entry (main, _main, execute, _execute, cli_main, ...):
# every int it returns is an exit code.
ENTRY = re.compile(r"(^|_)(main|execute)($|_)")
PROCESS_STATUS = re.compile(r"returncode|exitcode|exit_code|exit_status")


def scanned_files() -> list[Path]:
    return [p for folder in SCANNED for p in sorted((ROOT / folder).rglob("*.py")) if CLI not in p.parents]


def exit_code_violations(source: str, where: str) -> list[str]:
    """Every place in `source` that exits with, returns, names or tests for an exit code."""
    found = []

    def flag(node: ast.AST, what: str) -> None:
        found.append(f"{where}:{node.lineno}: {what}")

    for node in ast.walk(ast.parse(source, filename=where)):
        if isinstance(node, ast.Call) and _dotted(node.func) in EXITING:
            if node.args and _int(node.args[0]) in EXIT_CODES:
                flag(node, f"{_dotted(node.func)}({_int(node.args[0])})")
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and ENTRY.search(node.name):
            for ret in (n for n in ast.walk(node) if isinstance(n, ast.Return) and n.value is not None):
                codes = sorted(c for c in map(_int, ast.walk(ret.value)) if c is not None)
                if codes:
                    flag(ret, f"{node.name}() returns exit code(s) {codes}")
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(PROCESS_STATUS.search(_dotted(s) or "") for s in sides) and \
                    any(_int(s) in EXIT_CODES for s in sides):
                flag(node, f"compares a process's exit status with {[_int(s) for s in sides if _int(s)]}")
        name = _identifier(node)
        if name and "EXIT_" in name:
            flag(node, f"names {name}")
    return found


def _int(node: ast.AST) -> int | None:
    """The value of an int literal (not a bool), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    return None


def _dotted(node: ast.AST) -> str | None:
    """`a.b.c` for a name or attribute chain, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else node.attr
    return None


def _identifier(node: ast.AST) -> str | None:
    """The name a node defines or uses (variables, attributes, functions, classes, arguments, imports)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name
    if isinstance(node, ast.arg):
        return node.arg
    if isinstance(node, ast.alias):
        return f"{node.name} as {node.asname}" if node.asname else node.name
    return None


def test_no_module_outside_the_cli_exits_returns_or_names_an_exit_code():
    files = scanned_files()
    names = {p.relative_to(ROOT).as_posix() for p in files}
    # The real tree was read: the library, the built-ins, and nothing of the command line.
    assert len(files) > 100 and {"mixbench/experiments/run.py", "mixbench/experiments/parallel_cells.py",
                                 "mixbench/engine/distributed.py", "theory/check.py"} <= names
    assert not any(name.startswith("mixbench/cli/") for name in names)
    problems = [p for path in files for p in exit_code_violations(path.read_text(), path.relative_to(ROOT).as_posix())]
    assert not problems, "exit codes outside mixbench/cli/:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("snippet", [
    "import sys\nsys.exit(3)\n",
    "raise SystemExit(130)\n",
    "import os\nos._exit(2)\n",
    "exit(2)\n",
    "EXIT_DIVERGED = 3\n",
    "from mixbench.cli.exit_codes import EXIT_USAGE\n",
    "def finished(code):\n    return code == EXIT_INTERRUPTED\n",
    "def stopped(proc):\n    return proc.returncode == 130\n",
    "def main(argv):\n    return 2\n",
    "def _execute(request):\n    return 0 if request.done else 130\n",
])
def test_the_check_catches_an_exit_code_added_to_a_real_module(snippet):
    real = (ROOT / "mixbench" / "experiments" / "run.py").read_text()
    assert exit_code_violations(real, "run.py") == []
    assert exit_code_violations(real + "\n\n" + snippet, "run.py"), snippet


@pytest.mark.parametrize("snippet", [
    "def domain_count(data):\n    return 3\n",    # 'main' inside a word is no entry point
    "retries = 3\nkeep = 130\n",
    "def exits(fn):\n    try:\n        fn()\n    except SystemExit:\n        return True\n",   # catching is not exiting
])
def test_the_check_leaves_other_numbers_alone(snippet):
    assert exit_code_violations(snippet, "plain.py") == []
