"""Hostile and broken plugins: none of them breaks `mixbench list` or replaces a built-in.

The plugins are a real distribution: a package and its *.dist-info (METADATA, entry_points.txt)
in a private folder put on PYTHONPATH of a subprocess, found by importlib.metadata like any
installed plugin. Nothing is installed into the shared venv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DIST = "mixbench-hostile"

ENTRY_POINTS = """\
[mixbench.strategies]
stratified = hostile_plugin:FakeStratified
hostile-summary = hostile_plugin:SummaryRaises
hostile-exit = hostile_plugin.exits:Whatever
hostile-nodefault = hostile_plugin:NoDefault
hostile-positional = hostile_plugin:Positional
hostile-crash = hostile_plugin:CrashesInUpdate
hostile-hang = hostile_plugin.hangs:Whatever
hostile-interrupt = hostile_plugin.interrupts:Whatever
hostile-skipped = hostile_plugin.skipped:Whatever
hostile-slow-summary = hostile_plugin:SummaryHangs

[mixbench.tasks]
hostile-status = hostile_plugin:StatusRaises
hostile-init = hostile_plugin:InitRaises
synthetic = hostile_plugin:StatusRaises

[mixbench.embedders]
hostile-embedder = hostile_plugin:EmbedderSummaryRaises
"""

PACKAGE = '''\
from mixbench.embedder import Embedder
from mixbench.mixture import Mixture
from mixbench.strategy import MixingStrategy
from mixbench.tasks.synthetic import Synthetic


class FakeStratified(MixingStrategy):
    """A plugin pretending to be the stratified baseline."""

    def start(self, ctx):
        return Mixture.uniform(ctx.num_domains)

    def update(self, feedback, probe):
        return feedback.mixture


class CrashesInUpdate(FakeStratified):
    """A strategy with a bug: its first update raises."""

    def update(self, feedback, probe):
        raise RuntimeError("update exploded")


class SummaryRaises(FakeStratified):
    @classmethod
    def summary(cls):
        raise RuntimeError("summary exploded")


class SummaryHangs(FakeStratified):
    @classmethod
    def summary(cls):
        import time
        time.sleep(600)


class NoDefault(FakeStratified):
    """A hyperparameter with no default."""

    def __init__(self, *, eta: float):
        self.eta = eta


class Positional(FakeStratified):
    """A positional parameter with no default."""

    def __init__(self, eta):
        self.eta = eta


class StatusRaises(Synthetic):
    """A task whose status() raises."""

    def status(self):
        raise OSError("status exploded")


class InitRaises(Synthetic):
    """A task that cannot even be made."""

    def __init__(self):
        raise ValueError("constructor exploded")


class EmbedderSummaryRaises(Embedder):
    def identity(self):
        return "hostile"

    def embed(self, texts):
        raise AssertionError("never called")

    @classmethod
    def summary(cls):
        raise KeyError("embedder summary exploded")
'''

EXITS = "import sys\nsys.exit('hostile plugin exits at import')\n"
HANGS = "import time\ntime.sleep(600)\n"   # an import that never ends (a network mount, a lock)
INTERRUPTS = "raise KeyboardInterrupt('hostile plugin interrupts its own import')\n"
# What pytest.skip() raises at module level: a BaseException, not an Exception.
SKIPPED = "class Skipped(BaseException):\n    pass\n\n\nraise Skipped('hostile plugin skips itself')\n"
TIME_LIMIT = "3"   # seconds a plugin may take here (MIXBENCH_PLUGIN_TIMEOUT)


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("hostile-site")
    (site / "hostile_plugin").mkdir()
    (site / "hostile_plugin" / "__init__.py").write_text(PACKAGE)
    (site / "hostile_plugin" / "exits.py").write_text(EXITS)
    (site / "hostile_plugin" / "hangs.py").write_text(HANGS)
    (site / "hostile_plugin" / "interrupts.py").write_text(INTERRUPTS)
    (site / "hostile_plugin" / "skipped.py").write_text(SKIPPED)
    info = site / "mixbench_hostile-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {DIST}\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return site


def _python(code: str, site: Path, cwd: Path, time_limit: str = TIME_LIMIT) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
               MIXBENCH_PLUGIN_TIMEOUT=time_limit)
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=120)


def test_list_survives_every_broken_or_hanging_plugin(hostile_site, tmp_path):
    proc = _python("import sys; sys.argv = ['mixbench', 'list']; from mixbench.cli import main; main()",
                   hostile_site, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    for builtin in ("rnb", "static", "stratified", "synthetic", "champ", "minilm", "tfidf"):
        assert any(line.split()[:1] == [builtin] for line in lines), builtin
    # A plugin whose summary() raises, and a task whose status() raises, are listed, saying so.
    assert any(line.split()[:1] == ["hostile-summary"] and "RuntimeError: summary exploded" in line
               for line in lines), proc.stdout
    assert any(line.split()[:1] == ["hostile-status"] and "OSError: status exploded" in line
               for line in lines), proc.stdout
    assert any(line.split()[:1] == ["hostile-init"] and "ValueError: constructor exploded" in line
               for line in lines), proc.stdout
    assert any(line.split()[:1] == ["hostile-embedder"] and "embedder summary exploded" in line
               for line in lines), proc.stdout
    # One that exits at import is a warning, not the end of the command.
    assert "hostile-exit" not in proc.stdout
    assert "'hostile-exit'" in proc.stderr and "SystemExit" in proc.stderr
    # A plugin whose import hangs, or whose summary hangs, is reported as not answering within the
    # time limit (before, `list` waited for ever); one that raises a BaseException at import (its
    # own KeyboardInterrupt, pytest's Skipped) is a warning like any other failure (before, it
    # ended the command).
    assert "Aborted!" not in proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    [hang] = [w for w in warnings if "'hostile-hang'" in w]
    assert f"TimeLimitExceeded: its import did not answer within {TIME_LIMIT} s (the limit is " \
           f"$MIXBENCH_PLUGIN_TIMEOUT)" in hang
    [interrupt] = [w for w in warnings if "'hostile-interrupt'" in w]
    assert "CallAborted: KeyboardInterrupt: hostile plugin interrupts its own import" in interrupt
    [skipped] = [w for w in warnings if "'hostile-skipped'" in w]
    assert "CallAborted: Skipped: hostile plugin skips itself" in skipped
    assert any(line.split()[:1] == ["hostile-slow-summary"] and "TimeLimitExceeded: describing itself" in line
               for line in lines), proc.stdout


def test_a_run_of_a_builtin_never_waits_on_a_plugin(hostile_site, tmp_path):
    """With a plugin whose import hangs installed, and a time limit longer than the test allows,
    a run of built-ins loads no plugin at all and finishes."""
    proc = _python("import sys; sys.argv = ['mixbench', 'run', '--algo', 'stratified', '--task', 'synthetic',"
                   " '--steps', '4', '--steps-per-round', '2', '--no-mlflow', '--no-progress', '--out', 'out']\n"
                   "from mixbench.cli import main; main()", hostile_site, tmp_path, time_limit="600")
    assert proc.returncode == 0, proc.stderr
    assert "hostile-hang" not in proc.stderr and "Traceback" not in proc.stderr


def test_a_plugin_never_replaces_a_builtin(hostile_site, tmp_path):
    proc = _python("import json, warnings\n"
                   "from mixbench import registry\n"
                   "with warnings.catch_warnings(record=True) as caught:\n"
                   "    warnings.simplefilter('always')\n"
                   "    entry = {e.name: e for e in registry.strategies.entries()}['stratified']\n"
                   "print(json.dumps({'module': entry.obj.__module__, 'origin': entry.origin,\n"
                   "                  'warnings': [str(w.message) for w in caught]}))",
                   hostile_site, tmp_path)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert found["module"] == "mixbench.algorithms.stratified"
    assert found["origin"] == "mixbench: mixbench.algorithms.stratified:Stratified"
    [clash] = [w for w in found["warnings"] if "'stratified'" in w]
    assert DIST in clash and "mixbench: mixbench.algorithms.stratified:Stratified" in clash   # both distributions


def test_a_plugin_task_never_replaces_a_builtin_task(hostile_site, tmp_path):
    proc = _python("import warnings\n"
                   "warnings.simplefilter('ignore')\n"
                   "from mixbench import registry\n"
                   "print(registry.tasks.get('synthetic').__module__)", hostile_site, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "mixbench.tasks.synthetic"


def test_a_hyperparameter_without_a_default_is_refused_at_registration(hostile_site, tmp_path):
    proc = _python("import json, warnings\n"
                   "from mixbench import registry\n"
                   "with warnings.catch_warnings(record=True) as caught:\n"
                   "    warnings.simplefilter('always')\n"
                   "    names = registry.strategies.names()\n"
                   "print(json.dumps({'names': names, 'warnings': [str(w.message) for w in caught]}))",
                   hostile_site, tmp_path)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert "rnb" in found["names"]
    for name in ("hostile-nodefault", "hostile-positional"):   # keyword-only or positional alike
        assert name not in found["names"]
        [refusal] = [w for w in found["warnings"] if f"'{name}'" in w]
        assert "'eta'" in refusal and "no default" in refusal and DIST in refusal


def test_registering_a_class_without_defaults_in_code_raises():
    from mixbench.errors import MixbenchError
    from mixbench.mixture import Mixture
    from mixbench.registry import Registry
    from mixbench.strategy import MixingStrategy

    class Needy(MixingStrategy):
        def __init__(self, *, eta: float, beta: float = 1.0):
            self.eta, self.beta = eta, beta

        def start(self, ctx):
            return Mixture.uniform(ctx.num_domains)

        def update(self, feedback, probe):
            return feedback.mixture

    reg = Registry("strategy", "mixbench.tests-no-such-group", MixingStrategy)
    with pytest.raises(MixbenchError, match="'eta' have no default"):
        reg.register("needy", Needy)
    assert reg.names() == []


def test_a_plugin_that_fails_to_construct_is_named_in_one_line(hostile_site, tmp_path):
    proc = _python("import sys; sys.argv = ['mixbench', 'run', '--algo', 'stratified', '--task', 'hostile-init',"
                   " '--no-mlflow', '--no-progress']\nfrom mixbench.cli import main; main()", hostile_site, tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: cannot create task 'hostile-init' (mixbench-hostile: hostile_plugin:InitRaises): "
                      "ValueError: constructor exploded"]


def test_a_crashing_strategy_fails_its_cells_and_the_grid_goes_on(hostile_site, tmp_path):
    proc = _python("import sys; sys.argv = ['mixbench', 'compare', '--task', 'synthetic', '--algos',\n"
                   "    'hostile-crash,stratified', '--seeds', '0', '--steps', '20', '--steps-per-round', '10',\n"
                   "    '--domains', 'original', '--no-mlflow', '--no-progress', '--out', 'out']\n"
                   "from mixbench.cli import main; main()", hostile_site, tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "failed: hostile-crash · original · seed 0: RuntimeError: update exploded; going on" in proc.stderr
    assert "Traceback" not in proc.stderr
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()[1:] if line.strip() and " " in line}
    assert rows["stratified"].split()[2] == "1"                      # the other cell ran and is summarised
    assert rows["hostile-crash"].split()[2] == "0" and rows["hostile-crash"].split()[-1] == "1"   # seeds failed
    result = json.loads((tmp_path / "out/synthetic/hostile-crash/original/seed0.json").read_text())
    assert result["status"] == "failed" and "update exploded" in result["error"]
