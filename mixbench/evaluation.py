"""Per-domain evaluation loss: mean next-token loss over each domain's response tokens."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mixbench.data import IGNORE, EncodedSplit


def select_eval_subset(domain_ids: np.ndarray, per_domain: int, seed: int = 0) -> np.ndarray:
    """Indices of at most `per_domain` examples of each domain, the same for every run seed."""
    rng = np.random.default_rng(seed)
    chosen = []
    for d in np.unique(domain_ids):
        pool = np.flatnonzero(domain_ids == d)
        chosen.append(np.sort(rng.choice(pool, size=min(per_domain, pool.size), replace=False)))
    return np.sort(np.concatenate(chosen))


@torch.no_grad()
def per_domain_loss(model, split: EncodedSplit, num_domains: int, batch_size: int, device) -> np.ndarray:
    """(m,) token-weighted mean loss per domain; NaN for a domain with no eval tokens."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros(num_domains, dtype=torch.float64)
    tokens = torch.zeros(num_domains, dtype=torch.float64)
    for start in range(0, len(split), batch_size):
        x = split.inputs[start:start + batch_size].to(device)
        y = split.targets[start:start + batch_size].to(device)
        logits = model(x)  # (B, T, V)
        token_loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1), ignore_index=IGNORE, reduction="none"
        ).view(y.shape)
        domains = split.domain_ids[start:start + batch_size]
        loss_sum.index_add_(0, domains, token_loss.sum(1).double().cpu())
        tokens.index_add_(0, domains, (y != IGNORE).sum(1).double().cpu())
    model.train(was_training)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tokens.numpy() > 0, loss_sum.numpy() / tokens.numpy(), np.nan)


def weighted_mean(losses: np.ndarray, q: np.ndarray) -> float:
    """Σ q_i L_i over the domains that have a loss: the eval loss on the eval distribution."""
    ok = np.isfinite(losses) & (q > 0)
    return float((losses[ok] * q[ok]).sum() / q[ok].sum()) if ok.any() else float("nan")
