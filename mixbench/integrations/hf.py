"""R&B inside `transformers.Trainer`: a callback, and the Trainer that draws batches by its mixture.

    mixing = MixingCallback("rnb", domain_column="domain", steps_per_round=20)
    trainer = MixingTrainer(model=model, args=args, train_dataset=train, eval_dataset=evaluation,
                            data_collator=collate, callbacks=[mixing])
    trainer.train()                       # or trainer.train(resume_from_checkpoint=True)

What each part does:
- `MixingCallback` holds the strategy and, once training starts, a DomainMixer (the tap on
  `model.get_output_embeddings()`, the per-domain sums, the strategy, the sampler's mixture).
  Every K optimiser steps (on_step_end) the strategy sets the next mixture, and the round's
  mixture, draws and per-domain losses go through `Trainer.log`, so they are in
  `trainer.state.log_history` and reach whatever `report_to` names (MLflow included). on_save
  writes the mixing state into the checkpoint folder (mixbench_mixing.pt); a run resumed from
  that checkpoint reads it back and draws exactly what the uninterrupted run draws.
- `MixingTrainer` (or `MixingTrainerMixin` added to any Trainer subclass, TRL's included) makes
  the Trainer's training batches come from the callback's MixtureSampler. transformers has no
  public way to hand a Trainer a sampler, so the mixin overrides `_get_train_sampler` (the method
  TRL's trainers override for the same purpose) and keeps the domain column through the
  Trainer's column pruning (`_set_signature_columns_if_needed`). On resume the sampler restarts
  where it stopped; the batches the Trainer skips to reach its place in the epoch are stand-ins
  it never loads (with `ignore_data_skip` it skips none, and none are made).
- The domain label travels with each example: the collator turns the domain column into a tensor
  of domain ids, and a forward pre-hook on the model takes it out of the inputs and hands it to
  the tap; the model never sees it.

Under torchrun (DDP) every process runs the same: accelerate hands consecutive batches of the
sampler's stream to consecutive ranks, so each step's examples are split across ranks without
overlap, and the round's sums are added across processes before the strategy runs.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from mixbench.integrations.errors import IntegrationError, MissingExtra

try:
    import accelerate  # noqa: F401  (transformers.Trainer runs on it)
    from transformers import Trainer, TrainerCallback
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint
except ImportError as exc:
    raise MissingExtra(f"the Trainer integration needs transformers and accelerate ({exc}): "
                       f"pip install 'mixbench[hf]'") from None

from mixbench.engine.distributed import current_ranks
from mixbench.engine.meter import OVERHEAD_CATEGORIES
from mixbench.engine.sampler import MixtureSampler
from mixbench.integrations.collate import DOMAIN_IDS, DomainCollator
from mixbench.integrations.domains import DomainIndex, read_domain_column
from mixbench.integrations.losses import causal_lm_example_losses, looks_like_causal_lm
from mixbench.integrations.strategies import check_served, resolve_strategy
from mixbench.integrations.torch_loop import DEFAULT_TAP_MEMORY_MIB, DomainMixer, check_state, output_layer
from mixbench.storage.atomic import write_atomic
from mixbench.strategy import MixingStrategy, Signal

log = logging.getLogger(__name__)

STATE_FILE = "mixbench_mixing.pt"


class MixingCallback(TrainerCallback):
    """Mixes the training set's domains by `strategy` inside a `transformers.Trainer`.

    strategy          a registered name ("rnb", "stratified", "static", ...) or an instance;
                      strategy_params are its hyperparameters when given by name (lam=3 for rnb)
    domain_column     the column (or dict field) of each example naming its domain, in the
                      training set and, for q and per-domain eval losses, the evaluation set
    steps_per_round   K: optimiser steps between mixture updates
    eval_proportions  q (mapping domain → weight); default: the evaluation set's shares, else uniform
    eval_every_round  also log per-domain eval losses at every round end (strategies that read
                      eval losses get them every round anyway)
    example_losses    (outputs, inputs) → ((B,) summed loss, (B,) weight) per example, or None, for
                      per-domain losses of a model that is not a causal LM (a causal LM's are
                      built in); inputs are the keyword arguments of the model's forward
    seed              the sampler's seed (default: the Trainer's)
    """

    def __init__(self, strategy: str | MixingStrategy = "rnb", *, domain_column: str = "domain",
                 steps_per_round: int = 20, eval_proportions=None, eval_every_round: bool = False,
                 example_losses=None, seed: int | None = None, tap_memory_mib: float = DEFAULT_TAP_MEMORY_MIB,
                 **strategy_params):
        if not isinstance(steps_per_round, int) or steps_per_round < 1:
            raise IntegrationError(f"steps_per_round must be a positive integer, got {steps_per_round!r}")
        self.strategy_name = strategy if isinstance(strategy, str) else type(strategy).__name__
        # A strategy that cannot run here is refused now (whether eval losses can be had is known at bind).
        check_served(resolve_strategy(strategy, strategy_params), can_eval=True, name=self.strategy_name)
        self.strategy, self.strategy_params = strategy, strategy_params
        self.domain_column, self.steps_per_round = domain_column, steps_per_round
        self.eval_proportions, self.eval_every_round = eval_proportions, eval_every_round
        self.example_losses, self.seed, self.tap_memory_mib = example_losses, seed, tap_memory_mib
        self.trainer: Trainer | None = None
        self.mixer: DomainMixer | None = None
        self.resume_from: str | None = None
        self._batches: list = []   # (domain ids, inputs, tap block) of the forwards in progress
        self._hooks: list = []

    # -- set up by MixingTrainerMixin, before training ----------------------------------------

    def bind(self, trainer: Trainer) -> None:
        """Read the domains, build the sampler, carry domain ids through the collator to the model."""
        args = trainer.args
        if args.n_gpu > 1:
            raise IntegrationError(f"the Trainer would run torch.nn.DataParallel over {args.n_gpu} GPUs; launch one "
                                   f"process per GPU with torchrun (DDP) instead")
        if trainer.train_dataset is None:
            raise IntegrationError("MixingCallback needs the Trainer's train_dataset")
        train_labels = read_domain_column(trainer.train_dataset, self.domain_column, "training")
        self.index = DomainIndex.from_labels(train_labels)
        self.train_labels = train_labels
        train_ids = self.index.ids(train_labels)
        eval_labels = self._eval_labels(trainer)
        self.q = self.index.eval_proportions(self.eval_proportions, eval_labels)
        self.has_eval_domains = eval_labels is not None
        probe_strategy = resolve_strategy(self.strategy, self.strategy_params)
        check_served(probe_strategy, can_eval=self.has_eval_domains, name=self.strategy_name)
        if Signal.DOMAIN_GRADIENTS in probe_strategy.signals:
            output_layer(trainer.model.get_output_embeddings(),
                         f"the output layer of {type(trainer.model).__name__} (model.get_output_embeddings())")
        if self.example_losses is None and looks_like_causal_lm(trainer.model):
            self.example_losses = _causal_lm_losses
        if Signal.TRAIN_LOSSES in probe_strategy.signals and self.example_losses is None:
            raise IntegrationError(f"strategy {self.strategy_name!r} needs per-domain train losses: pass "
                                   f"example_losses= for a {type(trainer.model).__name__}")
        accumulation = args.gradient_accumulation_steps
        self.sampler = MixtureSampler(
            train_ids, self.index.size, batch_size=args.per_device_train_batch_size, world_size=args.world_size,
            rank=None, micro_batches=accumulation, seed=args.seed if self.seed is None else self.seed,
            loader_skips_on_resume=not args.ignore_data_skip)
        # How many steps the loader draws ahead: accelerate reads one micro-batch ahead, and each
        # worker keeps prefetch_factor more in flight.
        workers = args.dataloader_num_workers
        ahead = 1 + (workers * (args.dataloader_prefetch_factor or 2) if workers > 0 else 0)
        self.lookahead_steps = math.ceil(ahead / accumulation)
        trainer.data_collator = DomainCollator(trainer.data_collator, self.domain_column, self.index)
        for hook in self._hooks:   # bound again (a new Trainer on the same callback): one set of hooks
            hook.remove()
        model = trainer.model
        self._hooks = [model.register_forward_pre_hook(self._take_domain_ids, with_kwargs=True),
                       model.register_forward_hook(self._after_forward, with_kwargs=True, always_call=True)]
        self.trainer = trainer

    def _eval_labels(self, trainer: Trainer):
        dataset = trainer.eval_dataset
        if dataset is None or isinstance(dataset, dict):
            return None
        has_column = self.domain_column in (getattr(dataset, "column_names", None) or [])
        if not has_column:
            try:
                first = dataset[0] if len(dataset) else None
            except (TypeError, KeyError, IndexError):
                first = None
            has_column = isinstance(first, dict) and self.domain_column in first
        if not has_column:
            log.info("the evaluation set has no %r column: q is uniform unless eval_proportions is given, and "
                     "there are no per-domain eval losses", self.domain_column)
            return None
        labels = read_domain_column(dataset, self.domain_column, "evaluation")
        log.info("q, the eval proportions, from the %d evaluation examples' domains", len(labels))
        self.index.ids(labels, "evaluation")   # a domain that is not a training domain is named here
        return labels

    # -- the Trainer's events -----------------------------------------------------------------

    def on_train_begin(self, args, state, control, **kwargs):
        if self.trainer is None:
            raise IntegrationError("MixingCallback needs MixingTrainer (or a Trainer class with MixingTrainerMixin) "
                                   "so that the training batches follow the mixture")
        if self.mixer is not None:
            self.mixer.close()
        self.mixer = DomainMixer(
            self.strategy, head=self.trainer.model.get_output_embeddings(), train_domains=self.train_labels,
            total_steps=state.max_steps, steps_per_round=self.steps_per_round, eval_proportions=self.q,
            eval_losses=self._eval_losses if self.has_eval_domains and self.example_losses else None,
            eval_every_round=self.eval_every_round, lookahead_steps=self.lookahead_steps, sampler=self.sampler,
            seed=self.sampler.seed, tap_memory_mib=self.tap_memory_mib,
            strategy_params=self.strategy_params if isinstance(self.strategy, str) else None)
        if self.resume_from is not None and state.global_step > 0:
            self._restore(Path(self.resume_from), state.global_step)
        else:
            p_0 = zip(metric_names(self.index.names), self.mixer.mixture.weights)
            self._log({f"mixture/{n}": float(p) for n, p in p_0}, control)
        return control

    def on_step_end(self, args, state, control, **kwargs):
        record = self.mixer.step_end()
        if record is not None:
            metrics = record.metrics(metric_names(self.index.names))
            # What the mixing cost so far: the tap's adds and the strategy's work (probes included).
            meter = self.mixer.meter
            metrics["mixing/overhead_flops"] = meter.total_flops(*OVERHEAD_CATEGORIES)
            metrics["mixing/overhead_seconds"] = meter.total_seconds(*OVERHEAD_CATEGORIES)
            self._log(metrics, control)
        return control

    def _log(self, metrics: dict, control) -> None:
        """Through Trainer.log, so every `report_to` logger sees them. Logging resets the Trainer's
        should_log flag; it is put back, or this step's own loss log would be lost."""
        should_log = control.should_log
        self.trainer.log(metrics)
        control.should_log = should_log

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        saved = self.mixer.state_dict()   # every process: the round's sums are gathered on rank 0
        if state.is_world_process_zero:
            if not folder.is_dir():
                raise IntegrationError(f"the checkpoint folder {folder} is not there to hold the mixing state")
            write_atomic(folder / STATE_FILE, lambda f: torch.save(saved, f))
        return control

    def on_train_end(self, args, state, control, **kwargs):
        if self.mixer is not None:
            self.mixer.close()   # the head is a plain linear layer again; the domain ids are still removed
        return control

    def _restore(self, checkpoint: Path, step: int) -> None:
        path = checkpoint / STATE_FILE
        if not path.is_file():
            raise IntegrationError(f"{checkpoint} holds no mixing state ({STATE_FILE}): it was not saved by a run "
                                   f"with MixingCallback, so its mixture cannot be resumed")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - truncated, garbage or pickled code: all one to a user
            raise IntegrationError(f"{path} cannot be read as a mixing state: it is damaged or not one "
                                   f"({type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]})") from None
        check_state(state, str(path))
        if state["step"] != step:
            raise IntegrationError(f"{path} is of step {state['step']}, the checkpoint of step {step}")
        self.mixer.load_state_dict(state, source=str(path))

    # -- around each forward ------------------------------------------------------------------

    def _take_domain_ids(self, module, args, kwargs):
        ids = kwargs.pop(DOMAIN_IDS, None)
        block = None
        if ids is not None and self.mixer is not None and torch.is_grad_enabled():
            block = self.mixer.batch(ids)
            block.__enter__()
        self._batches.append((ids, kwargs, block))
        return args, kwargs

    def _after_forward(self, module, args, kwargs, output):
        if not self._batches:
            return None
        ids, inputs, block = self._batches.pop()
        if block is None:
            return None
        block.__exit__(None, None, None)
        if output is not None and self.example_losses is not None:
            needed = Signal.TRAIN_LOSSES in self.mixer.strategy.signals
            with torch.no_grad(), self.mixer.meter.timed("strategy" if needed else "report", "train_losses"):
                found = self.example_losses(output, inputs)
                if found is not None:
                    self.mixer.record_losses(ids, *found)
        return None

    # -- per-domain eval losses on the Trainer's evaluation set ---------------------------------

    def _eval_losses(self) -> np.ndarray:
        """(m,) mean eval loss per domain over the whole evaluation set; under DDP each process
        takes every world_size-th example and the sums are added (no example counted twice)."""
        trainer, args = self.trainer, self.trainer.args
        loader = trainer.get_eval_dataloader()
        dataset, collate = loader.dataset, loader.collate_fn
        model = trainer.model
        m = self.index.size
        sums = torch.zeros(m, dtype=torch.float64, device=args.device)
        weights = torch.zeros(m, dtype=torch.float64, device=args.device)
        rows = list(range(args.process_index, len(dataset), args.world_size))
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                for start in range(0, len(rows), args.per_device_eval_batch_size):
                    batch = collate([dataset[i] for i in rows[start:start + args.per_device_eval_batch_size]])
                    ids = batch.pop(DOMAIN_IDS).to(args.device)
                    batch = {k: v.to(args.device) if torch.is_tensor(v) else v for k, v in batch.items()}
                    losses, counts = self.example_losses(model(**batch), batch)
                    sums.index_add_(0, ids, losses.double())
                    weights.index_add_(0, ids, counts.double())
                    tokens = float(batch["input_ids"].numel()) if "input_ids" in batch else 0.0
                    self.mixer.meter.add_flops(*self._eval_label(), 2.0 * trainer.model.num_parameters() * tokens)
        finally:
            model.train(was_training)
        current_ranks().sum_([sums, weights], self.mixer.meter, *self._eval_label())
        sums, weights = sums.cpu().numpy(), weights.cpu().numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(weights > 0, sums / weights, np.nan)

    def _eval_label(self) -> tuple[str, str]:
        """Where the meter books an evaluation: the strategy's probe, or the report's logging."""
        if Signal.EVAL_LOSSES in self.mixer.strategy.signals:
            return "strategy", "probe_eval"
        return "report", "eval_losses"


def _causal_lm_losses(outputs, batch):
    if batch.get("labels") is None:
        return None   # a forward without labels: nothing to score
    return causal_lm_example_losses(outputs.logits, batch["labels"])


def metric_names(domains) -> list[str]:
    """Each domain's name as MLflow accepts it in a metric name, one name per domain: names that
    the replacement of unaccepted characters makes equal ("math?" and "math!" both "math_") get
    their domain's number, or one domain's curves would overwrite the other's."""
    cleaned = [re.sub(r"[^\w\-. /]", "_", str(domain)) for domain in domains]
    taken = Counter(cleaned)
    out: list[str] = []
    for i, name in enumerate(cleaned):
        if taken[name] > 1:
            name = f"{name}-{i}"
            while name in taken or name in out:   # a domain may be named so already
                name += "_"
        out.append(name)
    return out


class MixingTrainerMixin:
    """Makes a Trainer class draw its training batches from its MixingCallback's sampler:
    `class MySFTTrainer(MixingTrainerMixin, SFTTrainer): pass`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        found = [c for c in self.callback_handler.callbacks if isinstance(c, MixingCallback)]
        if len(found) != 1:
            raise IntegrationError(f"{type(self).__name__} needs exactly one MixingCallback in callbacks=[...], "
                                   f"got {len(found)}")
        self.mixing = found[0]
        self.mixing.bind(self)

    def _get_train_sampler(self, train_dataset=None):
        return self.mixing.sampler

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if self.mixing.domain_column not in self._signature_columns:
            self._signature_columns.append(self.mixing.domain_column)   # the collator needs it

    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        if resume_from_checkpoint is True:
            resume_from_checkpoint = get_last_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise IntegrationError(f"no checkpoint to resume from in {self.args.output_dir}")
        self.mixing.resume_from = os.fspath(resume_from_checkpoint) if resume_from_checkpoint else None
        return super().train(resume_from_checkpoint or None, *args, **kwargs)


class MixingTrainer(MixingTrainerMixin, Trainer):
    """transformers.Trainer whose training batches follow a MixingCallback's mixture."""
