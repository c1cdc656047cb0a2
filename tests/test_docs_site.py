"""The documentation site builds with `mkdocs build --strict` (a broken link, a missing anchor or a
page left out of the nav fails it), and the README stays what a newcomer reads: short, and with
every command run from the `.venv` its first command makes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 250

# A command line that would use whatever interpreter or tool is first on PATH instead of `.venv`'s.
# `python3 -m venv .venv` is the one exception: it is what makes the `.venv`. Any README line is
# held to the first rule (the issue's); the lines of shell blocks, in the README and the docs, to both.
BARE_PYTHON_OR_PIP = re.compile(r"^\s*(python3?|pip3?)(\s|$)")
BARE_TOOL = re.compile(r"^\s*(python3?|pip3?|mixbench|torchrun|mlflow|tox|pytest|mkdocs)(\s|$)")
MAKES_VENV = re.compile(r"^\s*python3 -m venv \.venv(\s|$)")


def bare_commands(lines: list[str], rule: re.Pattern = BARE_TOOL) -> list[str]:
    return [line for line in lines if rule.match(line) and not MAKES_VENV.match(line)]


def shell_block_lines(markdown: str) -> list[str]:
    """The lines of the ```bash (or ```sh, ```console) fenced blocks of a Markdown text."""
    lines, inside = [], False
    for line in markdown.splitlines():
        fence = line.strip()
        if fence.startswith("```"):
            inside = not inside and fence[3:].strip() in ("bash", "sh", "shell", "console")
            continue
        if inside:
            lines.append(line)
    return lines


def test_docs_site_builds_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    print(output)
    assert proc.returncode == 0, f"mkdocs build --strict failed (exit {proc.returncode}):\n{output}"
    assert (site / "index.html").is_file()
    assert (site / "api" / "strategy" / "index.html").is_file()


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; at most {MAX_README_LINES}"


def test_readme_lines_use_the_venv():
    text = README.read_text(encoding="utf-8")
    assert bare_commands(text.splitlines(), BARE_PYTHON_OR_PIP) == [], "README lines starting with a bare python or pip"
    assert bare_commands(shell_block_lines(text)) == [], "README commands that skip .venv/bin/..."


def test_docs_commands_use_the_venv():
    found = {}
    for page in sorted(DOCS.rglob("*.md")):
        bare = bare_commands(shell_block_lines(page.read_text(encoding="utf-8")))
        if bare:
            found[str(page.relative_to(ROOT))] = bare
    assert found == {}, "docs commands that use the system's tools, not .venv/bin/..."


def test_ci_runs_the_readme_test_command_verbatim():
    readme_commands = [line for line in shell_block_lines(README.read_text(encoding="utf-8"))
                       if "-m pytest" in line]
    assert len(readme_commands) == 1, readme_commands
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert readme_commands[0] in ci
    assert "'.[test,docs]'" in readme_commands[0]


def test_bare_command_rule():
    assert bare_commands(["mixbench is a benchmark", "python examples/x.py"], BARE_PYTHON_OR_PIP) == [
        "python examples/x.py"]
    assert bare_commands(["python examples/x.py", "pip install 'mixbench[hf]'", "  mixbench run"]) == [
        "python examples/x.py", "pip install 'mixbench[hf]'", "  mixbench run"]
    assert bare_commands(["python3 -m venv .venv && .venv/bin/pip install -e .", ".venv/bin/python -m pytest",
                          "pythonic prose", "bash scripts/paper_gpu.sh"]) == []
