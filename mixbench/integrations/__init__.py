"""R&B in a user's own training: a Hugging Face Trainer callback, a plain-PyTorch mixer, the
mixture-following sampler both use, and Regroup as a library call.

    torch_loop.py  DomainMixer: mixbench's round driver (the tap, the per-domain sums, the strategy)
                   and the sampler's mixture around a user's own loop
    hf.py          MixingCallback and MixingTrainer (needs `pip install mixbench[hf]`)
    regroup.py     regroup_texts(): texts in, a domain per text out, cached as `mixbench regroup` caches
    domains.py collate.py losses.py strategies.py errors.py: what those share

MixtureSampler (any map-style dataset, rank-aware, settable weights, exact resume) is the one
sampler mixbench's own trainer draws through too (mixbench.engine.sampler), exported here.

Nothing here is imported until used: `import mixbench.integrations` does not need transformers.
"""

_EXPORTS = {
    "MixtureSampler": "mixbench.engine.sampler",
    "DomainMixer": "mixbench.integrations.torch_loop",
    "RoundLog": "mixbench.integrations.torch_loop",
    "DOMAIN_IDS": "mixbench.integrations.collate",
    "DomainCollator": "mixbench.integrations.collate",
    "IntegrationError": "mixbench.integrations.errors",
    "causal_lm_example_losses": "mixbench.integrations.losses",
    "MixingCallback": "mixbench.integrations.hf",
    "MixingTrainer": "mixbench.integrations.hf",
    "MixingTrainerMixin": "mixbench.integrations.hf",
    "regroup_texts": "mixbench.integrations.regroup",
    "leave_process_group": "mixbench.engine.distributed",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mixbench.integrations' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
