"""MLflow tracking through one MlflowClient with an explicit experiment id.

The fluent `mlflow.*` API keeps global state (active run, cached experiment, env vars); a
client object keeps none, so runs in one process (tests, compare grids) cannot leak into
each other. With no tracking URI given, MLflow's own default applies (MLFLOW_TRACKING_URI if
set, else sqlite `mlflow.db` in the working directory).
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

from mixbench.engine.callbacks import TrainCallback
from mixbench.engine.history import RoundRecord
from mixbench.engine.state import StepResult
from mixbench.errors import MixbenchError

_METRIC_BATCH = 500
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. :]")


def metric_key(prefix: str, index: int, domain: str) -> str:
    """A metric name MLflow accepts, unique per domain and sorted by domain index."""
    return f"{prefix}/{index:03d}_{_UNSAFE.sub('_', domain)}"


class MlflowTracker:
    def __init__(self, experiment: str = "mixbench", tracking_uri: str | None = None,
                 run_name: str | None = None, tags: dict | None = None):
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        # mlflow sets its own logger to INFO on import; its database-migration chatter is noise here.
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        try:
            self.client = MlflowClient(tracking_uri=tracking_uri)
            found = self.client.get_experiment_by_name(experiment)
            self.experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
            run = self.client.create_run(self.experiment_id, run_name=run_name, tags=tags or {})
        except MlflowException as exc:
            raise MixbenchError(f"MLflow tracking failed: {str(exc).splitlines()[0]}") from None
        self.run_id = run.info.run_id
        self.tracking_uri = self.client._tracking_client.tracking_uri
        self._pending = []

    def log_params(self, params: dict) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[start:start + 100])

    def log_metric(self, key: str, value: float, step: int) -> None:
        from mlflow.entities import Metric

        if value == value and value not in (float("inf"), float("-inf")):  # MLflow rejects NaN/inf
            self._pending.append(Metric(key, float(value), int(time.time() * 1000), step))
        if len(self._pending) >= _METRIC_BATCH:
            self.flush()

    def log_metrics(self, metrics: dict, step: int) -> None:
        for key, value in metrics.items():
            self.log_metric(key, value, step)

    def flush(self) -> None:
        for start in range(0, len(self._pending), 1000):
            self.client.log_batch(self.run_id, metrics=self._pending[start:start + 1000])
        self._pending = []

    def log_artifact(self, path: Path) -> None:
        self.flush()
        self.client.log_artifact(self.run_id, str(path))

    def finish(self, status: str) -> None:
        """status: FINISHED, FAILED or KILLED."""
        self.flush()
        self.client.set_terminated(self.run_id, status=status)


class RoundLogger(TrainCallback):
    """Mirrors a training run into its MLflow run as it goes: the loss of every step; at every
    round end the eval losses, the task metrics and the mixture, per domain."""

    def __init__(self, tracker: MlflowTracker, domains: tuple[str, ...]):
        self.tracker, self.domains = tracker, domains

    def on_step(self, result: StepResult) -> None:
        self.tracker.log_metric("train_loss", result.loss, result.step)

    def on_round(self, record: RoundRecord) -> None:
        metrics = {"mean_eval_loss": record.mean_eval_loss, "round": record.round_index,
                   "reference_eval_loss": record.reference_eval_loss,
                   **{f"eval.{k}": v for k, v in record.eval_metrics.items()}}
        for i, d in enumerate(self.domains):
            metrics[metric_key("eval_loss", i, d)] = record.eval_losses[i]
            metrics[metric_key("p", i, d)] = record.mixture[i]
        self.tracker.log_metrics(metrics, step=record.step)
        self.tracker.flush()
