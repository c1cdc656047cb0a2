"""What the training loop tells the outside world as it goes: every step and every round.

A callback only watches (a progress bar, experiment tracking); what the run itself needs is
booked by the loop, never by a callback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mixbench.engine.history import RoundRecord
    from mixbench.engine.state import StepResult


class TrainCallback:
    """No-op hooks; override the ones you need."""

    def on_step(self, result: StepResult) -> None:
        """After every optimiser step of the run's own model (a probe's included)."""

    def on_round(self, record: RoundRecord) -> None:
        """After each round's evaluation, before the strategy chooses the next mixture."""

    def close(self) -> None:
        """When the run ends, however it ends."""


class ProgressBar(TrainCallback):
    """A tqdm bar on stderr: steps done, the last step's loss, the last round's eval loss."""

    def __init__(self, total_steps: int, num_rounds: int, desc: str, enabled: bool = True, done: int = 0):
        from tqdm.auto import tqdm

        self.num_rounds = num_rounds
        # `done`: the steps a resumed run had taken before its checkpoint.
        self.bar = tqdm(total=total_steps, initial=done, disable=not enabled, desc=desc, unit="step",
                        dynamic_ncols=True, leave=False, mininterval=0.5)

    def on_step(self, result: StepResult) -> None:
        self.bar.update(1)
        self.bar.set_postfix(step_loss=f"{result.loss:.3f}")

    def on_round(self, record: RoundRecord) -> None:
        shown = {"eval": f"{record.mean_eval_loss:.3f}"} if record.evaluated else {}
        self.bar.set_postfix(round=f"{record.round_index + 1}/{self.num_rounds}", **shown)

    def close(self) -> None:
        self.bar.close()
