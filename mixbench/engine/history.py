"""What a run leaves behind: its record, filled in place while it trains, so a failed or
interrupted run still has everything up to the moment it stopped."""

from __future__ import annotations

from dataclasses import dataclass, field

from mixbench.engine.meter import Meter
from mixbench.strategy import RunShape


@dataclass
class RoundRecord:
    round_index: int
    step: int
    mixture: list[float]               # the mixture sampled from during this round
    counts: list[int]                  # examples drawn per domain
    eval_losses: list[float]           # per domain, at the round end
    mean_eval_loss: float              # Σ q_i L_i
    train_loss: float                  # mean batch loss over the round
    seconds: float
    eval_metrics: dict = field(default_factory=dict)         # e.g. retrieval_top1 (image-text)
    domain_eval_metrics: dict = field(default_factory=dict)  # the same per domain: name -> list
    # Σ q_i L_i over the task's ORIGINAL domains: comparable across domain definitions.
    reference_eval_loss: float = float("nan")
    reference_eval_losses: list[float] = field(default_factory=list)   # per original domain
    evaluated: bool = True             # False: skipped by --eval-every (the losses above are NaN)


@dataclass
class RunHistory:
    """Filled in place while training, so a failed or interrupted run still has its record."""

    domains: tuple[str, ...] = ()
    eval_proportions: list[float] = field(default_factory=list)
    initial_eval_losses: list[float] = field(default_factory=list)
    initial_mean_eval_loss: float = float("nan")
    initial_eval_metrics: dict = field(default_factory=dict)
    reference_domains: tuple[str, ...] = ()          # the original domains of the eval split
    reference_proportions: list[float] = field(default_factory=list)
    initial_reference_eval_loss: float = float("nan")
    initial_reference_eval_losses: list[float] = field(default_factory=list)
    rounds: list[RoundRecord] = field(default_factory=list)
    train_losses: list[float] = field(default_factory=list)     # per step
    final_mixture: list[float] = field(default_factory=list)
    num_params: int = 0
    tokens_trained: int = 0
    device: str = ""
    world_size: int = 1             # processes training the model together (data parallel)
    seconds: float = 0.0
    meter: Meter | None = None
    shape: RunShape | None = None   # sizes for the paper's overhead formulas
    eval_rows: list[int] = field(default_factory=list)   # which eval examples were scored
    tap_accumulator: str = ""       # how the gradient tap kept its per-domain sums ("" when untapped)

    @property
    def last_evaluated(self) -> RoundRecord | None:
        """The last round that ended with an evaluation (a run stopped early may have skipped one
        under --eval-every); None before any."""
        return next((r for r in reversed(self.rounds) if r.evaluated), None)

    # The values at the last evaluation (before any round: the initial ones).
    def _final(self, name: str):
        last = self.last_evaluated
        return getattr(last, name) if last is not None else getattr(self, f"initial_{name}")

    final_eval_losses = property(lambda self: self._final("eval_losses"))
    final_mean_eval_loss = property(lambda self: self._final("mean_eval_loss"))
    final_eval_metrics = property(lambda self: self._final("eval_metrics"))
    final_reference_eval_loss = property(lambda self: self._final("reference_eval_loss"))
    final_reference_eval_losses = property(lambda self: self._final("reference_eval_losses"))
