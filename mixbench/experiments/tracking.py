"""MLflow tracking through one MlflowClient with an explicit experiment id.

The fluent `mlflow.*` API keeps global state (active run, cached experiment, env vars); a
client object keeps none, so runs in one process (tests, compare grids) cannot leak into
each other. With no tracking URI given, MLflow's own default applies (MLFLOW_TRACKING_URI if
set, else sqlite `mlflow.db` in the working directory).

Tracking never costs the training: a failed MLflow call is retried briefly, then the tracker
warns once and goes offline (every later call does nothing), and the run goes on with its
results JSON as the record. A tracking server that does not answer its health check within 5 s
in all (a deadline, not a limit per read: a server that trickles a header line now and then is
given up too), or a start-up (store, experiment, run) that takes longer than a minute in all, is
found before the run starts, with the same one warning.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import time
from pathlib import Path
from urllib.parse import urlparse

from mixbench.engine.callbacks import TrainCallback
from mixbench.engine.history import RoundRecord
from mixbench.engine.state import StepResult
from mixbench.storage.locks import FileLock
from mixbench.timelimit import TimeLimitExceeded, call_in_time

log = logging.getLogger(__name__)

_METRIC_BATCH = 500
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. :]")
_RETRY_DELAYS_S = (0.5, 2.0)     # waits before retrying a failed call: a busy database clears, a broken one doesn't
_SERVER_TIMEOUT_S = 5            # how long the up-front check waits for a tracking server, in all
_STARTUP_DEADLINE_S = 60         # how long the whole start-up may take (a sqlite store may wait on
                                 # other processes' first migrations: a few seconds each)
# MLflow's own HTTP retries (7, 120 s timeouts, backoff 2) take minutes per call on a dead server;
# these apply unless the user set them.
_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
_HOST, _PID = "mixbench.host", "mixbench.pid"    # tags naming the process that owns a run


def metric_key(prefix: str, index: int, domain: str) -> str:
    """A metric name MLflow accepts, unique per domain and sorted by domain index."""
    return f"{prefix}/{index:03d}_{_UNSAFE.sub('_', domain)}"


class MlflowTracker:
    """One MLflow run. `active` is False once tracking has failed (or never started): the
    methods then do nothing."""

    def __init__(self, experiment: str = "mixbench", tracking_uri: str | None = None,
                 run_name: str | None = None, tags: dict | None = None):
        import mlflow

        # mlflow sets its own logger to INFO on import: its migration chatter is noise, and its
        # failures (logged with tracebacks) reach the user as this tracker's one warning.
        logging.getLogger("mlflow").setLevel(logging.CRITICAL)
        self.tracking_uri = tracking_uri or mlflow.get_tracking_uri()
        self.client = self.experiment_id = self.run_id = None
        self.active = True
        self._pending = []
        unreachable = _unreachable_server(self.tracking_uri)
        if unreachable:
            self._go_offline(unreachable)
            return
        try:
            started = call_in_time(lambda: self._start_retrying(experiment, run_name, tags or {}),
                                   _STARTUP_DEADLINE_S, "the start-up", undo=_close_late_run)
        except TimeLimitExceeded:
            self._go_offline(f"its start-up took longer than {_STARTUP_DEADLINE_S} s")
            return
        except Exception as exc:   # every try failed
            self._go_offline(_root_cause(exc))
            return
        self.client, self.experiment_id, self.run_id = started

    def _start_retrying(self, experiment: str, run_name: str | None, tags: dict):
        """_start, retried as every call is; the last failure raised. Only the first try repairs
        the store: what a retry finds half-made, that start's own first try made (the disk is full
        still, say), and moving it aside again would only pile up copies."""
        for attempt, delay in enumerate(_RETRY_DELAYS_S):
            try:
                return self._start(experiment, run_name, tags, repair=attempt == 0)
            except Exception:   # noqa: BLE001 - retried; the last try's failure is the one reported
                time.sleep(delay)
        return self._start(experiment, run_name, tags, repair=False)

    def _start(self, experiment: str, run_name: str | None, tags: dict, repair: bool = True):
        """(client, experiment id, run id) of a new run; nothing set on the tracker (this runs in a
        thread the tracker may have stopped waiting for)."""
        from mlflow.tracking import MlflowClient

        with _first_contact_lock(self.tracking_uri):
            aside = _move_aside_a_cut_short_store(self.tracking_uri) if repair else None
            if aside:
                log.warning("MLflow's database %s was left half-made by a first creation cut short (a full disk, a "
                            "kill) and holds nothing: moved it to %s; MLflow makes a new one", aside[0], aside[1])
            client = MlflowClient(tracking_uri=self.tracking_uri)
            experiment_id = _experiment_id(client, experiment)
        try:
            _close_runs_of_dead_processes(client, experiment_id)
        except Exception as exc:   # tidying up after others must not cost this run its tracking
            log.debug("could not look for runs left RUNNING: %s", exc)
        owner = {_HOST: socket.gethostname(), _PID: str(os.getpid())}
        run_id = client.create_run(experiment_id, run_name=run_name, tags={**tags, **owner}).info.run_id
        return client, experiment_id, run_id

    def _call(self, method: str, *args, **kwargs):
        """The MlflowClient's `method`(*args, **kwargs) while the tracker is active."""
        if self.active:
            self._retrying(getattr(self.client, method), *args, **kwargs)

    def _retrying(self, fn, *args, **kwargs):
        """fn(*args, **kwargs), retried briefly; if it still fails, one warning and the tracker goes offline."""
        for delay in (*_RETRY_DELAYS_S, None):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:   # any MLflow failure (store, network, artifact disk) is one kind here
                if delay is None:
                    self._go_offline(_root_cause(exc))
                    return None
                time.sleep(delay)

    def _go_offline(self, reason: str) -> None:
        self.active = False
        self._pending = []
        log.warning("MLflow tracking failed (%s); training goes on without it, the results JSON is the record", reason)

    def log_params(self, params: dict) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self._call("log_batch", self.run_id, params=items[start:start + 100])

    def log_metric(self, key: str, value: float, step: int) -> None:
        from mlflow.entities import Metric

        if not self.active:
            return
        if value == value and value not in (float("inf"), float("-inf")):  # MLflow rejects NaN/inf
            self._pending.append(Metric(key, float(value), int(time.time() * 1000), step))
        if len(self._pending) >= _METRIC_BATCH:
            self.flush()

    def log_metrics(self, metrics: dict, step: int) -> None:
        for key, value in metrics.items():
            self.log_metric(key, value, step)

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), 1000):
            self._call("log_batch", self.run_id, metrics=pending[start:start + 1000])

    def log_artifact(self, path: Path) -> None:
        self.flush()
        self._call("log_artifact", self.run_id, str(path))

    def log_table(self, data, artifact_file: str) -> None:
        self._call("log_table", self.run_id, data=data, artifact_file=artifact_file)

    def log_figure(self, figure, artifact_file: str) -> None:
        self._call("log_figure", self.run_id, figure, artifact_file)

    def finish(self, status: str) -> None:
        """status: FINISHED, FAILED or KILLED."""
        self.flush()
        if self.active:
            self._call("set_terminated", self.run_id, status=status)
        elif self.run_id is not None:
            # Offline since mid-run: one quiet try to close the run (the failure may have passed);
            # if it fails, the next start on this host marks it KILLED.
            with contextlib.suppress(Exception):
                self.client.set_terminated(self.run_id, status=status)


class RoundLogger(TrainCallback):
    """Mirrors a training run into its MLflow run as it goes: the loss of every step; at every
    round end the eval losses, the task metrics and the mixture, per domain."""

    def __init__(self, tracker: MlflowTracker, domains: tuple[str, ...]):
        self.tracker, self.domains = tracker, domains

    def on_step(self, result: StepResult) -> None:
        self.tracker.log_metric("train_loss", result.loss, result.step)

    def on_round(self, record: RoundRecord) -> None:
        metrics = {"round": record.round_index}
        if record.evaluated:   # a round skipped by --eval-every logs its mixture only
            metrics.update({"mean_eval_loss": record.mean_eval_loss, "reference_eval_loss": record.reference_eval_loss,
                            **{f"eval.{k}": v for k, v in record.eval_metrics.items()}})
        for i, d in enumerate(self.domains):
            if record.evaluated:
                metrics[metric_key("eval_loss", i, d)] = record.eval_losses[i]
            metrics[metric_key("p", i, d)] = record.mixture[i]
        self.tracker.log_metrics(metrics, step=record.step)
        self.tracker.flush()


def _root_cause(exc: BaseException) -> str:
    """The innermost exception of the chain, in one line: MLflow wraps the telling one
    (`no such table`, `Connection refused`) in layers of its own."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first[:300]}"


def _experiment_id(client, name: str) -> str:
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException:   # another process created it since: a tracking server has no lock to share
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


@contextlib.contextmanager
def _first_contact_lock(tracking_uri: str):
    """MLflow creates and migrates a sqlite store's schema on first contact, and two processes
    doing it at once break each other (`table already exists`, `duplicate column name`): the
    first contact waits on a file lock next to the database."""
    database = _sqlite_path(tracking_uri)
    lock = FileLock(Path(f"{database}.lock")) if database else None
    try:
        held = lock is not None and lock.acquire()
    except OSError:   # no writable folder: MLflow reports its own error
        held = False
    try:
        yield
    finally:
        if held:
            lock.release()


def _move_aside_a_cut_short_store(tracking_uri: str) -> tuple[str, str] | None:
    """A sqlite store whose first creation was cut short (a full disk, a kill) is left with part of
    MLflow's schema, and MLflow fails on it for good ("table ... already exists", "duplicate column
    name"), even once the disk has room. MLflow makes its default experiment last, so a store with
    tables but no experiment and no run holds nothing of anyone's: it is renamed aside
    (DB.broken-<time>) for MLflow to make anew. Returns (database, where it went), or None. Called
    under the first-contact lock: no other mixbench process is making the store meanwhile."""
    import sqlite3

    database = _sqlite_path(tracking_uri)
    if not database or not os.path.isfile(database):
        return None
    try:
        with contextlib.closing(sqlite3.connect(database, timeout=10)) as db:   # rolls back a hot journal
            tables = {row[0] for row in db.execute("select name from sqlite_master where type = 'table'")}
            held = sum(db.execute(f"select count(*) from {name}").fetchone()[0]
                       for name in ("experiments", "runs") if name in tables)
    except sqlite3.Error:   # not a store this can judge: MLflow says what is wrong with it
        return None
    if not tables or held:
        return None
    aside = f"{database}.broken-{time.strftime('%Y%m%d-%H%M%S')}"
    os.replace(database, aside)
    return database, aside


def _sqlite_path(tracking_uri: str) -> str | None:
    if not tracking_uri.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(tracking_uri).database
    return database if database and database != ":memory:" else None


def _unreachable_server(tracking_uri: str) -> str | None:
    """Why the tracking server at `tracking_uri` cannot be used (None: not a server, or it answers
    its health check within _SERVER_TIMEOUT_S seconds in all)."""
    if urlparse(tracking_uri).scheme not in ("http", "https"):
        return None
    for name, value in _HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    import requests

    # requests' timeout is per read: a server trickling a header line every few seconds never
    # reaches it. The thread's deadline is the one that counts.
    health = f"{tracking_uri.rstrip('/')}/health"
    try:
        call_in_time(lambda: requests.get(health, timeout=_SERVER_TIMEOUT_S).close(), _SERVER_TIMEOUT_S,
                     "its health check")
    except (requests.RequestException, TimeLimitExceeded) as exc:
        return f"no answer from the tracking server {tracking_uri} within {_SERVER_TIMEOUT_S} s: {type(exc).__name__}"
    return None


def _close_late_run(started) -> None:
    """A run created after the tracker stopped waiting for it: closed, not left RUNNING."""
    client, _, run_id = started
    client.set_terminated(run_id, status="KILLED")


def _close_runs_of_dead_processes(client, experiment_id: str) -> None:
    """Runs of this experiment left RUNNING by a process of this host that no longer exists (killed
    with SIGKILL, or the machine lost power) are marked KILLED, with one line saying so."""
    query = f"attributes.status = 'RUNNING' and tags.`{_HOST}` = '{socket.gethostname()}'"
    stale = [run for run in client.search_runs([experiment_id], filter_string=query, max_results=1000)
             if not _process_alive(run.data.tags.get(_PID, ""))]
    for run in stale:
        client.set_terminated(run.info.run_id, status="KILLED")
    if stale:
        log.warning("marked %d MLflow run(s) of this experiment KILLED: the process running them ended without "
                    "closing them (%s)", len(stale), ", ".join(run.info.run_id for run in stale))


def _process_alive(pid: str) -> bool:
    """Whether process `pid` exists; an unreadable pid counts as alive (its run is left alone)."""
    if not pid.isdigit() or int(pid) <= 0:
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:   # exists, owned by someone else
        return True
    return True
