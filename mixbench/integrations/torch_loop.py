"""R&B in a plain PyTorch loop: one object owns the tap, its accumulators, the strategy and the
sampler's mixture, and is used in a few lines around `loss.backward()`:

    mixer = DomainMixer("rnb", head=model.lm_head, train_domains=labels, total_steps=N,
                        steps_per_round=K, batch_size=B)
    loader = DataLoader(dataset, batch_size=B, sampler=mixer.sampler, collate_fn=mixer.collator(collate))
    for batch in loader:
        ids = batch.pop(DOMAIN_IDS)
        with mixer.batch(ids):                 # the head's forward is split by domain...
            loss = model(**batch).loss
        loss.backward()                        # ...in this backward
        optimizer.step(); optimizer.zero_grad()
        mixer.step_end()                       # every K steps: the strategy sets the next mixture

Under torch.distributed (DDP) every process does the same: the sampler gives each rank its own
slice of every step, and at a round end the per-domain sums are added across processes (the
gradient sums averaged, as DDP averages gradients) before every process runs the strategy on
the same numbers, so every rank holds the same mixture. `state_dict()` is then collective: every
rank calls it; rank 0's copy is the one to save, and every rank loads it.

Every round's mixture, draws and per-domain losses are kept in `rounds` (RoundLog), flat for a
logger in `RoundLog.metrics(names)`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn

from mixbench.engine.codec import decode, encode
from mixbench.engine.distributed import current_ranks
from mixbench.engine.meter import Meter
from mixbench.engine.rounds import GRADIENT_SIGNALS, RoundDriver
from mixbench.engine.sampler import MixtureSampler, SamplerError, domain_id_array
from mixbench.errors import MixbenchError
from mixbench.integrations.collate import DomainCollator
from mixbench.integrations.domains import DomainIndex
from mixbench.integrations.errors import IntegrationError
from mixbench.integrations.strategies import IntegrationProbe, check_served, resolve_strategy
from mixbench.mixture import Mixture
from mixbench.storage.digest import DIGEST_KEY, DamagedFile, check_digest, content_digest
from mixbench.strategy import MixingStrategy, RunContext

STATE_FORMAT = 3   # 2: the round driver's state, and the one sampler's; 3: a content digest
_STATE_KEYS = ("domains", "steps_per_round", "strategy", "step", "driver", "sampler", "rounds", "meter")
# Memory the exact per-domain gradient sums may take before the accumulator sketches them
# (mixbench.engine.accumulator): a GPT-2 head (50,257 × 768) takes 154 MiB per domain.
DEFAULT_TAP_MEMORY_MIB = 1024.0


@dataclass(frozen=True)
class RoundLog:
    """One round: the mixture it sampled, the one the strategy chose next, and per-domain figures."""

    round_index: int
    step: int                   # optimiser steps done at the round's end
    mixture: list[float]        # sampled from during the round
    next_mixture: list[float]   # chosen at its end (the same after the last round)
    counts: list[int]           # examples drawn per domain (all processes)
    train_losses: list[float]   # mean train loss per domain over the round; NaN where not measured
    eval_losses: list[float] | None

    def metrics(self, names: Sequence[str]) -> dict[str, float]:
        """Flat name → value pairs for a logger: mixture/<domain> (the next round's),
        train_loss/<domain>, eval_loss/<domain>, drawn/<domain>."""
        out: dict[str, float] = {"mixing/round": float(self.round_index)}
        for i, name in enumerate(names):
            out[f"mixture/{name}"] = float(self.next_mixture[i])
            out[f"drawn/{name}"] = float(self.counts[i])
            if np.isfinite(self.train_losses[i]):
                out[f"train_loss/{name}"] = float(self.train_losses[i])
            if self.eval_losses is not None and np.isfinite(self.eval_losses[i]):
                out[f"eval_loss/{name}"] = float(self.eval_losses[i])
        return out


def check_state(state, source: str = "the saved mixing state") -> None:
    """An IntegrationError naming `source` unless `state` is a whole DomainMixer.state_dict() of
    this format: its content digest matches, and it has every part."""
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise IntegrationError(f"{source} is of format {found!r}, not {STATE_FORMAT}")
    try:
        check_digest(state, source)
    except DamagedFile as exc:
        raise IntegrationError(str(exc)) from None
    except TypeError as exc:   # a value no state_dict() holds
        raise IntegrationError(f"{source} is damaged ({exc})") from None
    missing = [key for key in _STATE_KEYS if key not in state]
    if missing:
        raise IntegrationError(f"{source} is damaged (it lacks {', '.join(missing)})")


def output_layer(head, what: str = "the model's output layer") -> nn.Linear:
    """`head` if it is an nn.Linear; else the one-line error R&B's tap gives."""
    if not isinstance(head, nn.Linear):
        kind = "nothing" if head is None else f"a {type(head).__name__}"
        raise IntegrationError(f"{what} is {kind}, not a linear layer (nn.Linear): R&B's gradient tap splits the "
                               f"weight gradient of a linear output layer")
    return head


class DomainMixer:
    """Mixes the domains of a training set by `strategy` (a registered name or an instance).

    head              the model's final linear layer (tapped when the strategy reads domain
                      gradients; a tied output embedding is fine: only the head's use is split)
    train_domains     the domain label of each training example (a list, or a dataset column)
    total_steps       optimiser steps of the run; steps_per_round K
    batch_size        examples per micro-batch on this process (builds `sampler`)
    eval_proportions  q: mapping domain → weight or a sequence in `domains` order; else from
                      `eval_domains` (the eval set's labels); else uniform
    eval_losses       () → (m,) per-domain eval losses in `domains` order (NaN where none), if the
                      strategy reads them or `eval_every_round`; under DDP every rank calls it
    micro_batches     micro-batches per optimiser step (gradient accumulation)
    lookahead_steps   steps the data loader draws ahead of training (0 for a DataLoader without
                      workers): a new mixture applies from that many steps after the round end
    sampler           a MixtureSampler made elsewhere (the Trainer callback's), else one is made

    The round itself — counts, train losses, the tap, the feedback, the metered update — is
    mixbench's RoundDriver (`driver`), the one its own trainer drives.
    """

    def __init__(self, strategy: str | MixingStrategy = "rnb", *, head: nn.Module | None, train_domains: Sequence,
                 total_steps: int, steps_per_round: int, batch_size: int | None = None,
                 eval_proportions: Mapping | Sequence | None = None, eval_domains: Sequence | None = None,
                 eval_losses: Callable[[], np.ndarray] | None = None, eval_every_round: bool = False,
                 micro_batches: int = 1, lookahead_steps: int = 0, seed: int = 0,
                 tap_memory_mib: float = DEFAULT_TAP_MEMORY_MIB, sampler: MixtureSampler | None = None,
                 strategy_params: dict | None = None):
        name = strategy if isinstance(strategy, str) else type(strategy).__name__
        strategy = resolve_strategy(strategy, strategy_params)
        check_served(strategy, can_eval=eval_losses is not None, name=name)
        for label, value in (("total_steps", total_steps), ("steps_per_round", steps_per_round)):
            if not isinstance(value, int) or value < 1:
                raise IntegrationError(f"{label} must be a positive integer, got {value!r}")
        if not isinstance(lookahead_steps, int) or lookahead_steps < 0:
            raise IntegrationError(f"lookahead_steps must be a non-negative integer, got {lookahead_steps!r}")
        self.index = DomainIndex.from_labels(train_domains)
        ids = self.index.ids(train_domains)
        self.q = self.index.eval_proportions(eval_proportions, eval_domains)
        self.total_steps, self.steps_per_round, self.lookahead_steps = total_steps, steps_per_round, lookahead_steps
        self.ranks = current_ranks()
        self.world_size, self.rank = self.ranks.world_size, self.ranks.rank
        m = self.index.size

        self.meter = Meter()
        reads_gradients = bool(strategy.signals & GRADIENT_SIGNALS)
        # Each process back-propagates the mean over its own rows and DDP averages: so do the sums.
        self.driver = RoundDriver(strategy, num_domains=m, head=output_layer(head) if reads_gradients else None,
                                  meter=self.meter, tap_memory_mib=tap_memory_mib, seed=seed, ranks=self.ranks,
                                  average_gradients=True)
        if sampler is None:
            if batch_size is None:
                raise IntegrationError("give batch_size (examples per micro-batch on this process) or a sampler")
            sampler = MixtureSampler(ids, m, batch_size=batch_size, world_size=self.world_size, rank=self.rank,
                                     micro_batches=micro_batches, seed=seed)
        self.sampler = sampler
        self._eval_losses, self.eval_every_round = eval_losses, eval_every_round
        self.probe = IntegrationProbe(self.meter, eval_losses, lambda: self.total_steps - self.step)
        self.step = 0
        self.rounds: list[RoundLog] = []
        ctx = RunContext(domains=self.index.names, train_sizes=np.bincount(ids, minlength=m), eval_proportions=self.q,
                         total_steps=total_steps, steps_per_round=steps_per_round, seed=seed)
        self.driver.start(ctx)
        self.driver.prepare(self.probe)
        self.sampler.set_mixture(self.mixture, from_unit=self.sampler.units_drawn)

    @property
    def strategy(self) -> MixingStrategy:
        return self.driver.strategy

    @property
    def mixture(self) -> Mixture:
        """What the round in progress samples from."""
        return self.driver.mixture

    @property
    def domains(self) -> tuple[str, ...]:
        return self.index.names

    def collator(self, collate: Callable | None = None, column: str = "domain") -> DomainCollator:
        """`collate` (default: torch's) with each example's `column` turned into batch[DOMAIN_IDS]."""
        return DomainCollator(collate, column, self.index)

    # -- around each step ---------------------------------------------------------------------

    @contextmanager
    def batch(self, domain_ids):
        """Around the forward of one (micro-)batch: `domain_ids` (B,) is each example's domain."""
        with self.driver.batch(self._checked(domain_ids)):
            yield

    def record_losses(self, domain_ids, loss_sums, weights=None) -> None:
        """Per-example summed losses (B,) and what each counts for (its scored tokens; default 1),
        for the per-domain train losses (logged, and read by strategies that ask for them)."""
        self.driver.record_losses(self._checked(domain_ids), loss_sums, weights)

    def _checked(self, domain_ids) -> torch.Tensor:
        """`domain_ids` as a (B,) long tensor where they were, or an IntegrationError naming the first
        that is no domain: a float id would be truncated (0.7 to domain 0), a string would fail
        deep inside torch."""
        if getattr(domain_ids, "ndim", 1) != 1:
            raise IntegrationError(f"domain ids must be a (B,) tensor of values in [0, {self.index.size}), got shape "
                                   f"{tuple(domain_ids.shape)}")
        try:
            checked = domain_id_array(domain_ids, self.index.size)
        except SamplerError as exc:
            raise IntegrationError(str(exc)) from None
        device = domain_ids.device if isinstance(domain_ids, torch.Tensor) else None
        return torch.as_tensor(checked, device=device)

    def step_end(self, loss: float | None = None) -> RoundLog | None:
        """After each optimiser step (`loss`: the step's, for a strategy with a per-step hook; by
        default the mean of the losses recorded in it). At a round end (every K steps, and the
        last step) returns the round's RoundLog, having set the next round's mixture; else None."""
        self.step += 1
        self.driver.end_step(self.step, loss)
        if self.step % self.steps_per_round and self.step != self.total_steps:
            return None
        return self._end_round()

    # -- the round end --------------------------------------------------------------------------

    def _end_round(self) -> RoundLog:
        round_index = (self.step - 1) // self.steps_per_round
        totals = self.driver.close_round(update=self.step < self.total_steps)
        eval_losses = None
        if self.driver.needs_eval_losses:
            eval_losses = np.asarray(self.probe.eval_losses(), dtype=np.float64)
        elif self.eval_every_round and self._eval_losses is not None:
            with self.meter.timed("report", "eval_losses"):
                eval_losses = np.asarray(self._eval_losses(), dtype=np.float64)
        sampled = self.mixture
        if self.step < self.total_steps:   # no update after the last round: nothing would use it
            self.driver.update(totals, round_index=round_index, step=self.step, probe=self.probe,
                               eval_losses=eval_losses)
            self.sampler.set_mixture(self.mixture, from_unit=self.step + self.lookahead_steps)
        log = RoundLog(round_index, self.step, sampled.weights.tolist(), self.mixture.weights.tolist(),
                       totals.counts.tolist(), totals.train_losses.tolist(),
                       None if eval_losses is None else eval_losses.tolist())
        self.rounds.append(log)
        return log

    # -- resume -------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Everything a resumed run needs to go on as this one would: the round driver's state (the
        strategy's, the mixture, the round in progress), the sampler before the next step, and the
        rounds so far. Tensors and plain data only (`torch.load(..., weights_only=True)` reads it).
        Collective under DDP: every rank's share of the round's sums is copied to rank 0, whose
        state holds them all; each rank takes up its own on load."""
        self.driver.gather_round()
        state = {
            "format": STATE_FORMAT, "domains": list(self.domains), "steps_per_round": self.steps_per_round,
            "strategy": type(self.strategy).__name__, "step": self.step,
            "driver": self.driver.state_dict(),
            "sampler": encode(self.sampler.state_dict(self.step), "sampler state"),
            "rounds": [encode(asdict(r), "round log") for r in self.rounds],
            # The overhead so far, so the totals a resumed run reports go on from here.
            "meter": [[category, label, self.meter.flops[(category, label)], self.meter.seconds[(category, label)]]
                      for category, label in sorted(set(self.meter.flops) | set(self.meter.seconds))],
        }
        state[DIGEST_KEY] = content_digest(state)   # checked on load: a damaged state is refused, not resumed
        return state

    def load_state_dict(self, state: dict, source: str = "the saved mixing state") -> None:
        """Continue from a `state_dict()` (`source` names where it came from in an error). One that
        is damaged (its content digest does not match), of another format or of another run is
        an IntegrationError saying which."""
        check_state(state, source)
        for key, mine in (("domains", list(self.domains)), ("steps_per_round", self.steps_per_round),
                          ("strategy", type(self.strategy).__name__)):
            if state[key] != mine:
                raise IntegrationError(f"{source} has {key} {state[key]!r}, this run has {mine!r}")
        try:   # each process takes up its own share of the round (saved by as many processes)
            self.driver.load_state_dict(state["driver"], rank=self.rank, world_size=self.world_size)
            self.sampler.load_state_dict(decode(state["sampler"]))
        except MixbenchError as exc:
            raise IntegrationError(f"{source} does not fit this run: {exc}") from None
        self.step = int(state["step"])
        self.rounds = [RoundLog(**decode(r)) for r in state["rounds"]]
        for category, label, flops, seconds in state["meter"]:
            self.meter.flops[(category, label)] = flops
            self.meter.seconds[(category, label)] = seconds

    def close(self) -> None:
        """Detach the tap from the head (the head is a plain linear layer again)."""
        self.driver.close()
