"""The engine: one training loop for every strategy, and what it is built from.

    rounds.py       the round driver: counts, train losses, the tap's sums, the feedback built from
                    the strategy's declared signals, the metered update. The trainer, the
                    integrations (Trainer callback, DomainMixer) and the conformance kit all drive it
    sampler.py      the one sampler: batches drawn by a mixture, each domain read in shuffled
                    passes, rank-aware, exactly resumable (the integrations hand it to loaders)
    trainer.py      train(): the loop, top to bottom
    session.py      a run in progress: the training step, its record, evaluation, branches
    state.py        everything a run changes, in one object (what a checkpoint saves)
    checkpoint.py   writing it to disk as the run goes, and restoring a run from it
    codec.py        a strategy's state as tensors and plain data (what weights_only loads)
    interrupts.py   Ctrl-C and SIGTERM held back until the training step in progress ends
    distributed.py  data parallel on torch.distributed: ranks share each batch, the tap's sums
    history.py      what a run leaves behind: per-round and per-step records
    probe.py        the probe a strategy gets into the live run
    tap.py          per-domain final-layer gradients from the normal backward pass
    accumulator.py  where the tap sums them over a round
    meter.py        FLOPs and seconds, attributed to who caused them
    evaluation.py   the fixed eval subset and the q-weighted eval loss
    schedule.py     the learning-rate schedule
    callbacks.py    what the loop tells the outside world (progress, tracking)
"""

# Imported on first use: the light parts of the engine (history, meter) must not pull in torch
# for a command that only reads results or refuses bad input.
_EXPORTS = {
    "GradientTap": "mixbench.engine.tap", "Meter": "mixbench.engine.meter", "RoundRecord": "mixbench.engine.history",
    "RunHistory": "mixbench.engine.history", "TrainCallback": "mixbench.engine.callbacks",
    "train": "mixbench.engine.trainer", "RoundDriver": "mixbench.engine.rounds",
    "RoundTotals": "mixbench.engine.rounds", "MixtureSampler": "mixbench.engine.sampler",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mixbench.engine' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
