"""The package's layers and which way imports go between them, checked on the source (every
import statement, function-level ones included), so a wrong import fails here before it tangles
the tree. docs/architecture.md explains the layers; this is the rule they follow."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The built-ins' folders at the top of the repository install inside mixbench (pyproject.toml).
BUILTINS = ("algorithms", "tasks", "embedders", "theory")
PACKAGES = ("mixbench", *BUILTINS)

# The contract: the top-level modules of mixbench. They import nothing above them.
CONTRACT = "contract"
# Which layers each layer may import besides itself. Plugins (algorithms, tasks, embedders) meet
# mixbench through the contract (tasks also use its data-reading helpers); mixbench itself finds
# them only through the registries' entry points, never by import.
ALLOWED = {
    CONTRACT: set(),
    "storage": {CONTRACT},
    "data": {CONTRACT, "storage"},
    "models": {CONTRACT, "storage"},   # a pretrained model converted once is kept in the cache folder
    "workloads": {CONTRACT, "models"},
    "regroup": {CONTRACT, "storage"},
    "engine": {CONTRACT, "storage", "workloads"},
    "testing": {CONTRACT, "engine"},
    "experiments": {CONTRACT, "storage", "data", "models", "workloads", "regroup", "engine"},
    # R&B in a user's own training: the engine's tap, accumulators, meter and codec, and Regroup.
    "integrations": {CONTRACT, "storage", "regroup", "engine"},
    "cli": {CONTRACT, "storage", "data", "models", "workloads", "regroup", "engine", "experiments", "theory"},
    "algorithms": {CONTRACT},
    "embedders": {CONTRACT, "storage"},   # minilm's int8 model, built once, is kept in the cache folder
    "tasks": {CONTRACT, "data", "storage"},
    "theory": {CONTRACT, "regroup", "algorithms"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] in BUILTINS:
        parts.insert(0, "mixbench")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in BUILTINS:
        return parts[1]
    if module == "mixbench.__main__":   # `python -m mixbench`: the command line
        return "cli"
    if len(parts) == 1 or (ROOT / "mixbench" / f"{parts[1]}.py").exists():
        return CONTRACT
    return parts[1]


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `module` imports anywhere in its source. `from a import b` counts as
    importing a.b when that is a module, else a."""
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:   # relative: from the package, up level - 1 folders
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {m for m in found if m in known}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def layering_violations(graph: dict[str, set[str]]) -> list[str]:
    return [f"{a} ({layer(a)}) imports {b} ({layer(b)})"
            for a, targets in sorted(graph.items()) for b in sorted(targets)
            if layer(b) != layer(a) and layer(b) not in ALLOWED[layer(a)]]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of imports (depth-first search for a back edge), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def test_every_import_goes_down_the_layers(graph):
    wrong = layering_violations(graph)
    assert not wrong, "imports against the layering:\n  " + "\n  ".join(wrong)


def test_every_module_belongs_to_a_known_layer(graph):
    assert {layer(m) for m in graph} <= set(ALLOWED), sorted({layer(m) for m in graph} - set(ALLOWED))


def test_no_import_cycle(graph):
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checks_catch_a_wrong_import_and_a_cycle(graph):
    """The same checks on the real graph with one bad edge added each time."""
    assert graph["mixbench.engine.trainer"] and len(graph) > 60    # the real source was read
    upward = {**graph, "mixbench.engine.trainer": graph["mixbench.engine.trainer"] | {"mixbench.experiments.run"}}
    assert layering_violations(upward) == [
        "mixbench.engine.trainer (engine) imports mixbench.experiments.run (experiments)"]
    contract_up = {**graph, "mixbench.strategy": graph["mixbench.strategy"] | {"mixbench.engine.meter"}}
    assert layering_violations(contract_up) == ["mixbench.strategy (contract) imports mixbench.engine.meter (engine)"]
    loop = {**graph, "mixbench.engine.meter": graph["mixbench.engine.meter"] | {"mixbench.engine.trainer"}}
    cycle = find_cycle(loop)
    assert cycle is not None and cycle[0] == cycle[-1] and "mixbench.engine.meter" in cycle


@pytest.mark.parametrize("name", BUILTINS)
def test_the_builtins_install_inside_mixbench_only(name, tmp_path):
    """Outside the checkout, `import tasks` (and the other built-in folders) finds nothing: they are
    mixbench.tasks, ..., so they never collide with a user's own package of that name."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def imports(module: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", f"import {module}"], cwd=tmp_path, env=env,
                              capture_output=True, text=True)

    outside = imports(name)
    assert outside.returncode != 0 and f"No module named '{name}'" in outside.stderr, outside.stderr
    inside = imports(f"mixbench.{name}")
    assert inside.returncode == 0, inside.stderr
