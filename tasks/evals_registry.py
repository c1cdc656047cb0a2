"""Reading OpenAI evals' registry data, shared by the `evals-id` and `evals-ood` adapters.

OpenAI Evals (PyPI `evals`, MIT) ships ``evals/registry/evals/*.yaml`` — entries such as::

    2d_movement:                       # the eval's name (here: a task, and a domain)
      id: 2d_movement.dev.v0
    2d_movement.dev.v0:
      class: evals.elsuite.basic.includes:Includes
      args: {samples_jsonl: 2d_movement/samples.jsonl}

— and ``evals/registry/data/<dir>/*.jsonl`` rows ``{"input": [chat messages] or str, "ideal": str
or [str, ...]}``. Only the plain question→answer classes are used (Match, Includes, FuzzyMatch):
their samples are a prompt and a reference answer, which is what a training example is. Several
evals sharing one samples file count once (the first by name).

Where the registry is read from (first found): the `source=` keyword or MIXBENCH_EVALS_WHEEL (a
wheel file, a folder holding one, or an unpacked package/registry folder); an installed `evals`
package (located with importlib.util.find_spec, never imported: its dependencies are heavy); a
wheel under ``$MIXBENCH_DATA/evals/``. Get the wheel with
``pip download --no-deps evals==3.0.1.post1`` (46 MB); read straight from the zip.

Excluded on purpose (EXCLUDED_DATA_DIRS): the data folders evals' LICENSE.md lists as carrying
their own licences (c4, wikipedia, CC BY-NC and other third-party sources), and evals' own
unit-test fixtures. None of the excluded folders is plain question→answer data in 3.0.1.post1
anyway, but the exclusion is explicit so a later release cannot pull them in.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from mixbench.tasks import datafiles

from mixbench.data.rows import RowError, parse_jsonl, stable_hash
from mixbench.task import Example, Task, TaskDataError, TaskInfo

log = logging.getLogger(__name__)

ENV = "MIXBENCH_EVALS_WHEEL"
FOLDER = "evals"
WHEEL = "evals-3.0.1.post1-py3-none-any.whl"
URL = "https://github.com/openai/evals (PyPI evals)"

PLAIN_CLASSES = frozenset({
    "evals.elsuite.basic.match:Match",
    "evals.elsuite.basic.includes:Includes",
    "evals.elsuite.basic.fuzzy_match:FuzzyMatch",
})

# Data folders (first path component under registry/data) never read.
EXCLUDED_DATA_DIRS = frozenset({
    # Listed in evals' LICENSE.md "Dataset Licenses" as under their own licences:
    "text_compression",    # c4 (ODC-By), wikipedia (CC BY-SA/GFDL), english_quotes (CC BY 4.0), ...
    "steganography",       # c4, wikipedia, PiC/phrase_similarity and alpaca-gpt4 (CC BY-NC 4.0), ...
    "schelling_point",     # openwebtext, wikipedia
    "ballots",             # California ballot proposals
    "sandbagging",         # MMLU
    "theory_of_mind",      # ToMi (CC BY-NC 4.0), Social IQA (CC BY 4.0)
    "already_said_that",   # WordNet licence
    # evals' own unit-test fixtures, not a task:
    "test_fuzzy_match",
})


# -- where the registry is -----------------------------------------------------------------------

class RegistrySource:
    """Read access to a registry folder (``evals/`` + ``data/``), in a wheel or on disk."""

    location: str

    def yaml_files(self) -> list[str]:
        raise NotImplementedError

    def exists(self, rel: str) -> bool:
        raise NotImplementedError

    def read(self, rel: str) -> bytes:
        raise NotImplementedError

    def display(self, rel: str) -> str:
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError


class WheelSource(RegistrySource):
    PREFIX = "evals/registry/"

    def __init__(self, wheel: Path):
        self.wheel = wheel
        self.location = str(wheel)
        try:
            self._zip = zipfile.ZipFile(wheel)
        except (OSError, zipfile.BadZipFile) as exc:
            raise TaskDataError(f"{wheel} is not a readable wheel: {exc}") from None
        self._names = set(self._zip.namelist())

    def yaml_files(self) -> list[str]:
        start = self.PREFIX + "evals/"
        return sorted(n[len(self.PREFIX):] for n in self._names if n.startswith(start) and n.endswith(".yaml"))

    def exists(self, rel: str) -> bool:
        return self.PREFIX + rel in self._names

    def read(self, rel: str) -> bytes:
        return self._zip.read(self.PREFIX + rel)

    def display(self, rel: str) -> str:
        return f"{self.wheel}!{self.PREFIX}{rel}"

    def version(self) -> str:
        for name in sorted(self._names):
            if name.endswith(".dist-info/METADATA"):
                for line in self._zip.read(name).decode("utf-8", "replace").splitlines():
                    if line.startswith("Version:"):
                        return line.split(":", 1)[1].strip()
        parts = self.wheel.name.split("-")
        return parts[1] if len(parts) > 2 else datafiles.files_version([self.wheel])


class FolderSource(RegistrySource):
    def __init__(self, registry: Path, package_version: str | None = None):
        self.registry = registry
        self.location = str(registry)
        self._version = package_version

    def yaml_files(self) -> list[str]:
        return sorted(str(p.relative_to(self.registry)) for p in (self.registry / "evals").glob("*.yaml"))

    def exists(self, rel: str) -> bool:
        return (self.registry / rel).is_file()

    def read(self, rel: str) -> bytes:
        return (self.registry / rel).read_bytes()

    def display(self, rel: str) -> str:
        return str(self.registry / rel)

    def version(self) -> str:
        if self._version:
            return self._version
        return datafiles.files_version([self.registry / rel for rel in self.yaml_files()])


def _source_at(path: Path) -> RegistrySource | None:
    """A registry at `path`: a wheel, a folder with a wheel in it, or an unpacked package/registry."""
    if path.is_file() and path.suffix in (".whl", ".zip"):
        return WheelSource(path)
    if not path.is_dir():
        return None
    for registry in (path, path / "registry", path / "evals" / "registry"):
        if (registry / "evals").is_dir() and (registry / "data").is_dir():
            return FolderSource(registry)
    wheels = sorted(path.glob("evals-*.whl"))
    return WheelSource(wheels[-1]) if wheels else None


def _installed_source() -> RegistrySource | None:
    try:
        spec = importlib.util.find_spec("evals")  # finds the package without running its __init__
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        registry = Path(folder) / "registry"
        if (registry / "evals").is_dir() and (registry / "data").is_dir():
            try:
                version = importlib.metadata.version("evals")
            except importlib.metadata.PackageNotFoundError:
                version = None
            return FolderSource(registry, version)
    return None


def locate(source: str | os.PathLike | None) -> tuple[RegistrySource | None, Path]:
    """The registry to read, and the place named in the 'missing' message."""
    if source is not None or os.environ.get(ENV):
        where = Path(source if source is not None else os.environ[ENV]).expanduser()
        return _source_at(where), where
    installed = _installed_source()
    default = datafiles.data_root() / FOLDER
    return (installed or _source_at(default)), default


def missing_message(where: Path) -> str:
    return (f"put {WHEEL} (pip download --no-deps evals==3.0.1.post1) at {where} "
            f"(or set {ENV}, or pip install --no-deps evals)")


# -- which evals -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class EvalSpec:
    name: str        # the eval's registry name: the task, and the domain
    cls: str         # its eval class
    samples: str     # its samples file, relative to registry/data


def discover(source: RegistrySource) -> list[EvalSpec]:
    """The plain question→answer evals of the registry, one per samples file, sorted by name."""
    import yaml

    entries: dict[str, object] = {}
    for rel in source.yaml_files():
        try:
            doc = yaml.safe_load(source.read(rel))
        except yaml.YAMLError as exc:
            log.warning("%s: not valid YAML (%s); skipped", source.display(rel), str(exc).splitlines()[0])
            continue
        if isinstance(doc, dict):
            entries.update(doc)
    found, seen = [], set()
    for name in sorted(entries):
        entry = entries[name]
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            continue  # a versioned spec, or something else: reached through its base entry's id
        target = entries.get(entry["id"])
        if not isinstance(target, dict) or target.get("class") not in PLAIN_CLASSES:
            continue
        samples = (target.get("args") or {}).get("samples_jsonl")
        if not isinstance(samples, str) or samples in seen:
            continue
        if samples.strip("/").split("/")[0] in EXCLUDED_DATA_DIRS:
            continue
        if not source.exists(f"data/{samples}"):
            log.info("evals: %s names %s, which is not in %s; skipped", name, samples, source.location)
            continue
        seen.add(samples)
        found.append(EvalSpec(name=name, cls=target["class"], samples=samples))
    return found


def read_eval(source: RegistrySource, spec: EvalSpec, *, max_rows: int | None, seed: int) -> list[Example]:
    """Up to `max_rows` samples of one eval (a seeded sample of its file), as examples of its domain."""
    rel = f"data/{spec.samples}"
    examples = parse_jsonl(source.read(rel), source.display(rel), lambda r: to_example(r, spec.name),
                           required=("input", "ideal"), limit=max_rows, seed=[seed, stable_hash(spec.name)])
    # Some eval files repeat samples verbatim; a copy on each side of the split would put training
    # data in the evaluation set, so each sample is kept once.
    distinct = list(dict.fromkeys(examples))
    if len(distinct) < len(examples):
        log.info("%s: %d repeated samples kept once", source.display(rel), len(examples) - len(distinct))
    return distinct


def load_evals(source: RegistrySource, specs: list[EvalSpec], *, max_rows: int | None, min_rows: int, seed: int,
               want: int | None, what: str) -> dict[str, list[Example]]:
    """Read evals in a seeded order until `want` of them (all when None) have at least `min_rows`
    samples; fewer is a designed filter (logged), none at all a warning. An eval whose file has too
    many bad rows is dropped with a warning (the error a single-file task would raise); none left
    is an error."""
    order = sorted(s.name for s in specs)
    if want is not None:
        order = [order[i] for i in np.random.default_rng(seed).permutation(len(order))]
    by_name = {s.name: s for s in specs}
    kept: dict[str, list[Example]] = {}
    for name in order:
        if want is not None and len(kept) >= want:
            break
        try:
            examples = read_eval(source, by_name[name], max_rows=max_rows, seed=seed)
        except TaskDataError as exc:
            # One broken third-party file must not sink a registry of hundreds: that eval is dropped.
            log.warning("%s: eval %r dropped: %s", what, name, exc)
            continue
        if not examples:
            log.warning("%s: domain %r has no examples after filtering; dropped", what, name)
        elif len(examples) < min_rows:
            log.info("%s: %s has %d usable samples (< min_rows=%d); left out", what, name, len(examples), min_rows)
        else:
            kept[name] = examples
    if not kept:
        raise TaskDataError(f"{what}: no eval in {source.location} has at least {min_rows} usable samples")
    return dict(sorted(kept.items()))


# -- one sample → one example --------------------------------------------------------------------

def flatten_input(value) -> str:
    """Chat messages as text, one 'role: content' line each (a message's `name` wins over its role)."""
    if isinstance(value, str):
        return f"user: {value.strip()}"
    if not isinstance(value, list) or not value:
        raise RowError("'input' is neither text nor a non-empty list of chat messages")
    lines = []
    for message in value:
        if not isinstance(message, dict):
            raise RowError("an 'input' message is not an object")
        content = message.get("content")
        if isinstance(content, list):  # content parts: keep the text ones
            content = "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        if not isinstance(content, str):
            raise RowError("an 'input' message has no text content")
        label = message.get("name") or message.get("role") or "user"
        lines.append(f"{label}: {content.strip()}")
    return "\n".join(lines)


def to_example(record: dict, domain: str) -> Example:
    prompt = flatten_input(record["input"])
    ideal = record["ideal"]
    if isinstance(ideal, list):
        ideal = next((x for x in ideal if x is not None and str(x).strip()), "")
    ideal = str(ideal).strip() if isinstance(ideal, (str, int, float)) else ""
    if not ideal:
        raise RowError("empty 'ideal'")
    return Example(prompt=prompt + "\nassistant: ", response=ideal, domain=domain)


# -- the adapters' shared part -------------------------------------------------------------------

@dataclass(kw_only=True, eq=False)
class EvalsTaskBase(Task):
    """Location, status and metadata shared by evals-id and evals-ood (abstract: not registered)."""

    source: str | os.PathLike | None = None   # a wheel, a folder holding one, or an unpacked registry

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def _source(self) -> tuple[RegistrySource | None, Path]:
        return locate(self.source)

    def status(self) -> str:
        try:
            found, where = self._source()
        except TaskDataError as exc:
            return f"missing: {exc}"
        return "ready" if found is not None else f"missing: {missing_message(where)}"

    def info(self) -> TaskInfo:
        try:
            found, _ = self._source()
        except TaskDataError:
            found = None
        return TaskInfo(
            name=self.name,
            description=self.description,
            source=f"{URL}: registry data ({found.location if found else 'not found'})",
            license="MIT (OpenAI evals; datasets with their own licences are excluded)",
            version=found.version() if found else "not-available",
        )

    def _specs(self) -> tuple[RegistrySource, list[EvalSpec]]:
        found, where = self._source()
        if found is None:
            raise TaskDataError(f"{self.name} data is missing: {missing_message(where)}")
        if self.max_rows is not None and self.max_rows < self.min_rows:
            raise TaskDataError(f"{self.name}: max_rows ({self.max_rows}) is below min_rows ({self.min_rows})")
        specs = discover(found)
        if not specs:
            raise TaskDataError(f"{self.name}: {found.location} holds no plain question→answer eval")
        return found, specs
