"""The engine: one training loop for every strategy, and what it is built from.

    trainer.py      train(): the loop, top to bottom
    session.py      a run in progress: the training step, its record, evaluation, branches
    state.py        everything a run changes, in one object (what a checkpoint saves)
    history.py      what a run leaves behind: per-round and per-step records
    probe.py        the probe a strategy gets into the live run
    tap.py          per-domain final-layer gradients from the normal backward pass
    accumulator.py  where the tap sums them over a round
    meter.py        FLOPs and seconds, attributed to who caused them
    sampler.py      batches drawn by a mixture
    evaluation.py   the fixed eval subset and the q-weighted eval loss
    schedule.py     the learning-rate schedule
    callbacks.py    what the loop tells the outside world (progress, tracking)
"""

from mixbench.engine.callbacks import TrainCallback
from mixbench.engine.history import RoundRecord, RunHistory
from mixbench.engine.meter import Meter
from mixbench.engine.tap import GradientTap
from mixbench.engine.trainer import train

__all__ = ["GradientTap", "Meter", "RoundRecord", "RunHistory", "TrainCallback", "train"]
