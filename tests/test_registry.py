"""Registries of strategies and tasks, and the entry-point plugin path with a real distribution."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from mixbench import registry
from mixbench.embedder import Embedder
from mixbench.errors import MixbenchError
from mixbench.mixture import Mixture
from mixbench.registry import DuplicateName, PluginWarning, Registry, UnknownName
from mixbench.strategy import MixingStrategy
from mixbench.task import Task

EMPTY_GROUP = "mixbench.tests-no-such-group"  # no distribution declares entry points here


class _Demo(MixingStrategy):
    """A demo strategy for registry tests."""

    def __init__(self, *, alpha: float = 1.0):
        self.alpha = alpha

    def start(self, ctx):
        return Mixture.uniform(ctx.num_domains)

    def update(self, feedback, probe):
        return feedback.mixture


class _Other(_Demo):
    """Another demo strategy."""


def _fresh(group=EMPTY_GROUP) -> Registry:
    # A private registry: tests must not add names to the process-wide ones.
    return Registry("strategy", group, MixingStrategy)


# ---------------------------------------------------------------- register / get / create


def test_register_get_create():
    reg = _fresh()
    assert reg.register("demo", _Demo) is _Demo
    reg.register("other", _Other)
    assert reg.get("demo") is _Demo
    assert reg.names() == ["demo", "other"]
    [entry, _] = reg.entries()
    assert (entry.name, entry.obj, entry.origin) == ("demo", _Demo, "registered in code")

    made = reg.create("demo", alpha=0.25)
    assert type(made) is _Demo and made.alpha == 0.25
    assert reg.create("other").get_params() == {"alpha": 1.0}


def test_duplicate_name_raises():
    reg = _fresh()
    reg.register("demo", _Demo, origin="first place")
    with pytest.raises(DuplicateName, match="'demo' is already registered \\(first place\\)"):
        reg.register("demo", _Other)
    with pytest.raises(DuplicateName):
        reg.register("demo", _Demo)  # even the same object
    assert reg.get("demo") is _Demo
    assert issubclass(DuplicateName, MixbenchError) and issubclass(DuplicateName, ValueError)


def test_duplicate_of_a_builtin_raises_once_loaded():
    reg = _fresh("mixbench.strategies")
    assert "rnb" in reg.names()
    with pytest.raises(DuplicateName, match="rnb"):
        reg.register("rnb", _Demo)


@pytest.mark.filterwarnings("ignore::mixbench.registry.PluginWarning")
def test_duplicate_of_a_builtin_raises_even_before_first_use():
    reg = _fresh("mixbench.strategies")
    with pytest.raises(DuplicateName):
        reg.register("rnb", _Demo)


@pytest.mark.parametrize("obj", [object, _Demo(), "mixbench.algorithms.rnb:RnB", Task, None])
def test_registering_a_non_strategy_raises_type_error(obj):
    reg = _fresh()
    with pytest.raises(TypeError, match="subclass of MixingStrategy"):
        reg.register("bad", obj)
    assert reg.names() == []


def test_unknown_name_suggests_the_close_one():
    with pytest.raises(UnknownName) as info:
        registry.strategies.get("rbn")
    msg = str(info.value)
    assert "did you mean 'rnb'" in msg
    assert msg.startswith("unknown strategy 'rbn'")  # not wrapped in KeyError's quotes
    assert "(known: " in msg and all(n in msg for n in ("rnb", "static", "stratified"))
    assert isinstance(info.value, KeyError) and isinstance(info.value, MixbenchError)

    with pytest.raises(UnknownName, match="did you mean 'synthetic'"):
        registry.tasks.get("synthetc")


def test_unknown_name_without_a_close_one_lists_the_known():
    with pytest.raises(UnknownName) as info:
        registry.strategies.create("zzzzzzzz")
    assert "did you mean" not in str(info.value)
    assert "(known: " in str(info.value) and "stratified" in str(info.value)
    with pytest.raises(UnknownName, match="known: none"):
        _fresh().get("anything")


# ---------------------------------------------------------------- built-ins come from entry points


@pytest.mark.parametrize(
    "reg, group, expected",
    [
        (registry.strategies, "mixbench.strategies",
         {"stratified": "mixbench.algorithms.stratified:Stratified", "static": "mixbench.algorithms.static:Static",
          "rnb": "mixbench.algorithms.rnb:RnB"}),
        (registry.tasks, "mixbench.tasks",
         {"champ": "mixbench.tasks.champ:Champ", "synthetic": "mixbench.tasks.synthetic:Synthetic"}),
        (registry.embedders, "mixbench.embedders",
         {"minilm": "mixbench.embedders.minilm:MiniLM", "tfidf": "mixbench.embedders.tfidf:Tfidf"}),
    ],
)
def test_builtins_arrive_through_entry_points(reg, group, expected):
    declared = {ep.name: ep.value for ep in entry_points(group=group) if ep.dist.name == "mixbench"}
    assert declared.items() >= expected.items()  # later issues add more built-ins
    entries = {e.name: e for e in reg.entries()}
    for name, value in expected.items():
        assert entries[name].origin == f"mixbench: {value}"
        module, _, attr = value.partition(":")
        assert entries[name].obj.__module__ == module and entries[name].obj.__name__ == attr
        assert issubclass(entries[name].obj, reg.base)


def test_the_global_registries_are_typed():
    assert registry.strategies.base is MixingStrategy and registry.strategies.group == "mixbench.strategies"
    assert registry.tasks.base is Task and registry.tasks.group == "mixbench.tasks"
    assert registry.embedders.base is Embedder and registry.embedders.group == "mixbench.embedders"


# ---------------------------------------------------------------- a real third-party plugin

PLUGIN_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "mixbench-plugin-demo"
version = "0.0.1"
description = "A third-party mixbench strategy, built and installed by mixbench's tests."

[project.entry-points."mixbench.strategies"]
demo-uniform = "mixbench_plugin_demo:DemoUniform"
demo-broken = "mixbench_plugin_demo.broken:Broken"

[tool.setuptools]
packages = ["mixbench_plugin_demo"]
"""

PLUGIN_INIT = '''\
from mixbench.mixture import Mixture
from mixbench.strategy import MixingStrategy


class DemoUniform(MixingStrategy):
    """Demo plugin: uniform over domains, from a separate distribution."""

    def __init__(self, *, sharpness: float = 1.0):
        self.sharpness = sharpness

    def start(self, ctx):
        return Mixture.uniform(ctx.num_domains)

    def update(self, feedback, probe):
        return Mixture.uniform(len(feedback.mixture))
'''

PLUGIN_BROKEN = '''\
raise ImportError("mixbench_plugin_demo.broken needs a library that is not installed")
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """Build and install `mixbench-plugin-demo` with pip, offline, into a private target
    directory (put on sys.path / PYTHONPATH by the tests that use it).

    A real wheel with its own dist-info and entry points, found by importlib.metadata like any
    installed plugin; installing into a private directory rather than the shared venv means a
    test run that is killed half-way, or one running beside it, never sees the demo plugin."""
    root = tmp_path_factory.mktemp("plugin")
    src = root / "src"
    (src / "mixbench_plugin_demo").mkdir(parents=True)
    (src / "pyproject.toml").write_text(PLUGIN_PYPROJECT)
    (src / "mixbench_plugin_demo" / "__init__.py").write_text(PLUGIN_INIT)
    (src / "mixbench_plugin_demo" / "broken.py").write_text(PLUGIN_BROKEN)
    site = root / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--no-cache-dir", "--quiet", "--target", str(site), str(src)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, f"pip install of the demo plugin failed:\n{proc.stdout}\n{proc.stderr}"
    assert (site / "mixbench_plugin_demo-0.0.1.dist-info" / "entry_points.txt").is_file()
    return site


def _cli(args, site: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, "-c", "from mixbench.cli import main; main()", *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=120,
    )


def test_plugin_is_discovered_and_a_broken_one_is_skipped(plugin_site, monkeypatch):
    monkeypatch.syspath_prepend(str(plugin_site))  # also invalidates the import caches
    try:
        reg = _fresh("mixbench.strategies")
        with pytest.warns(PluginWarning, match="demo-broken") as record:
            names = reg.names()
        assert "demo-uniform" in names and "demo-broken" not in names
        assert {"rnb", "static", "stratified"} <= set(names)
        assert names == sorted(names)
        [warning] = [w for w in record if issubclass(w.category, PluginWarning)]
        assert "mixbench-plugin-demo" in str(warning.message)
        assert "ImportError" in str(warning.message)

        entry = {e.name: e for e in reg.entries()}["demo-uniform"]
        assert entry.origin == "mixbench-plugin-demo: mixbench_plugin_demo:DemoUniform"
        assert entry.obj.__module__ == "mixbench_plugin_demo"
        made = reg.create("demo-uniform", sharpness=2.0)
        assert made.get_params() == {"sharpness": 2.0}
        with pytest.raises(UnknownName, match="did you mean 'demo-uniform'"):
            reg.get("demo-unifrom")
    finally:
        sys.modules.pop("mixbench_plugin_demo", None)
        sys.modules.pop("mixbench_plugin_demo.broken", None)


def test_cli_list_shows_the_plugin_and_warns_about_the_broken_one(plugin_site, tmp_path):
    proc = _cli(["list"], plugin_site, tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.split()[:1] == ["demo-uniform"] and "Demo plugin: uniform over domains" in line
               for line in lines), proc.stdout
    assert "mixbench-plugin-demo: mixbench_plugin_demo:DemoUniform" in proc.stdout
    assert "--sharpness 1.0" in proc.stdout
    for builtin in ("rnb", "static", "stratified", "synthetic", "champ"):
        assert any(line.split()[:1] == [builtin] for line in lines), builtin
    assert "demo-broken" not in proc.stdout
    assert "demo-broken" in proc.stderr and "warning" in proc.stderr.lower()
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_cli_runs_the_plugin_strategy(plugin_site, tmp_path):
    out = tmp_path / "out"
    proc = _cli(["run", "--algo", "demo-uniform", "--task", "synthetic", "--steps", "4", "--steps-per-round", "2",
                 "--device", "cpu", "--no-mlflow", "--no-progress", "--out", str(out)], plugin_site, tmp_path)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "demo-broken" not in proc.stderr  # a run loads the entry points it uses, not the broken one
    path = out / "synthetic" / "demo-uniform" / "original" / "seed0.json"
    assert path.is_file(), list(out.rglob("*"))
    result = json.loads(path.read_text())
    assert result["status"] == "finished"
    assert result["strategy"]["name"] == "demo-uniform"
    assert result["strategy"]["params"] == {"sharpness": 1.0}


def test_no_strategy_hyperparameter_is_shadowed_by_a_run_option():
    """`mixbench run` reads its own options first: a hyperparameter spelled like one (--lr,
    --seed, ...) could never be set from the command line."""
    from mixbench import registry
    from mixbench.cli.run import run_cmd
    from mixbench.config import option

    run_options = {opt for param in run_cmd.params for opt in [*param.opts, *param.secondary_opts]}
    for entry in registry.strategies.entries():
        clashes = {f"--{option(k)}" for k in entry.obj.param_defaults()} & run_options
        assert not clashes, f"{entry.name}: {sorted(clashes)} are run options"
