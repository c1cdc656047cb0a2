"""R&B in your own PyTorch training loop: a few lines around loss.backward().

    .venv/bin/pip install -e '.[hf]'          # for GPT2LMHeadModel; mixbench's loop API itself needs only torch
    .venv/bin/python examples/torch_loop_rnb.py                                  # about half a minute on 2 CPU cores
    .venv/bin/python examples/torch_loop_rnb.py --gram-estimator unbiased        # the Gram's diagonal from two halves
    .venv/bin/torchrun --nproc-per-node 2 examples/torch_loop_rnb.py             # the same under DDP (gloo on CPUs)
    .venv/bin/python examples/torch_loop_rnb.py --task examples/data/champ_sources.jsonl \
        --text-field text --domain-field source

The model is a small GPT-2 built from a config (random weights), text is read as bytes, and the
data is the local JSONL file examples/data/champ_math.jsonl ("text", "domain", "split"), or your
own file with the flags `mixbench run` takes for it (--task PATH --text-field ... --domain-field
...; docs/data.md).
"""

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from transformers import GPT2Config, GPT2LMHeadModel

from mixbench.data.datafile import DataFile, add_arguments, from_arguments
from mixbench.data.file_examples import read_examples
from mixbench.errors import MixbenchError
from mixbench.integrations import DOMAIN_IDS, DomainMixer, causal_lm_example_losses, leave_process_group

DATA = Path(__file__).with_name("data") / "champ_math.jsonl"
SEQ, EOS, IGNORE = 128, 256, -100


def encode(prompt: str, response: str) -> dict:
    """Bytes as tokens; the loss is on the response (all of the text when there is no prompt)."""
    prompt_ids, response_ids = list(prompt.encode("utf-8")), list(response.encode("utf-8"))
    ids = (prompt_ids + response_ids)[:SEQ - 1] + [EOS]
    labels = ([IGNORE] * len(prompt_ids) + response_ids)[:SEQ - 1] + [EOS]
    pad = SEQ - len(ids)
    return {"input_ids": torch.tensor(ids + [EOS] * pad), "attention_mask": torch.tensor([1] * len(ids) + [0] * pad),
            "labels": torch.tensor(labels + [IGNORE] * pad)}


def load(data_file: DataFile):
    """The file's train and eval rows, read as `mixbench run --task PATH ...` reads them."""
    try:
        examples = read_examples(data_file)
    except MixbenchError as exc:   # bad input: one line, as mixbench says it
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    return ([{**encode(e.prompt, e.response), "domain": e.domain} for e in split]
            for split in (examples.train, examples.eval))


def per_domain_eval_loss(model, evaluation, domains) -> np.ndarray:
    """Mean token loss of each domain's eval examples (every process scores them all: it is small)."""
    sums, tokens = np.zeros(len(domains)), np.zeros(len(domains))
    model.eval()
    with torch.no_grad():
        for row in evaluation:
            out = model(input_ids=row["input_ids"][None], attention_mask=row["attention_mask"][None])
            loss, count = causal_lm_example_losses(out.logits, row["labels"][None])
            d = domains.index(row["domain"])
            sums[d] += loss.item()
            tokens[d] += count.item()
    model.train()
    return sums / np.maximum(tokens, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)   # --task PATH and its field flags, as mixbench run takes them [DATA]
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--steps-per-round", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16, help="per process")
    parser.add_argument("--gram-estimator", choices=["paper", "unbiased"], default="paper",
                        help="rnb's Gram: the paper's, or with its diagonal from two halves of each domain")
    args = parser.parse_args()
    if "WORLD_SIZE" in os.environ:            # started by torchrun
        dist.init_process_group("gloo")
    torch.manual_seed(0)                      # the same initial weights on every process

    train, evaluation = load(from_arguments(args) if args.task else DataFile(DATA, text_field="text",
                                                                             domain_field="domain"))
    model = GPT2LMHeadModel(GPT2Config(vocab_size=EOS + 1, n_positions=SEQ, n_embd=64, n_layer=2, n_head=4,
                                       bos_token_id=EOS, eos_token_id=EOS))
    # transformers finds a model's loss by its class name, and "GPT2LMHeadModel" names none: it warns
    # "loss_type=None ... unrecognized" and uses the causal-LM loss. Naming that loss says the same, quietly.
    model.loss_type = "ForCausalLM"
    mixer = DomainMixer(
        "rnb", strategy_params={"gram_estimator": args.gram_estimator},
        head=model.get_output_embeddings(),                  # the tap goes on the (tied) output layer
        train_domains=[r["domain"] for r in train], eval_domains=[r["domain"] for r in evaluation],
        total_steps=args.steps, steps_per_round=args.steps_per_round, batch_size=args.batch_size,
        eval_losses=lambda: per_domain_eval_loss(model, evaluation, list(mixer.domains)), eval_every_round=True)
    loader = DataLoader(train, batch_size=args.batch_size, sampler=mixer.sampler, collate_fn=mixer.collator())
    net = torch.nn.parallel.DistributedDataParallel(model) if dist.is_initialized() else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)

    last_round = None
    batches = (batch for _ in iter(int, 1) for batch in loader)   # the sampler goes on across epochs
    for _, batch in zip(range(args.steps), batches):
        ids = batch.pop(DOMAIN_IDS)
        with mixer.batch(ids):                                  # the head's forward is split by domain...
            out = net(**batch)
        out.loss.backward()                                     # ...in this backward
        mixer.record_losses(ids, *causal_lm_example_losses(out.logits.detach(), batch["labels"]))
        optimizer.step()
        optimizer.zero_grad()
        round_log = mixer.step_end()                            # every K steps: the next mixture
        last_round = round_log or last_round
        if round_log and mixer.rank == 0:   # each round once: the mixture it sampled from, and its eval loss
            shown = "  ".join(f"{d} {p:.3f}" for d, p in zip(mixer.domains, round_log.mixture))
            scored = np.isfinite(round_log.eval_losses)   # a domain with no eval rows has no eval loss
            loss = float(np.dot(mixer.q[scored], np.asarray(round_log.eval_losses)[scored]))   # by eval-set share
            print(f"step {round_log.step:>4}: eval loss {loss:.3f}; mixture sampled {shown}")
    if last_round is not None and mixer.rank == 0:
        unscored = [d for d, x in zip(mixer.domains, last_round.eval_losses) if not np.isfinite(x)]
        if unscored:
            print(f"no eval loss for {', '.join(unscored)}: no eval rows (trained on, not scored)")
    mixer.close()
    del net
    leave_process_group()   # under torchrun: the DDP model freed, then the group left (a no-op otherwise)


if __name__ == "__main__":
    main()
