"""Train a small GPT-2 with transformers.Trainer while R&B balances the mix of domains.

    .venv/bin/pip install -e '.[hf]'
    .venv/bin/python examples/hf_trainer_rnb.py                    # about a minute on 2 CPU cores
    .venv/bin/python examples/hf_trainer_rnb.py --regroup          # Regroup the texts first: the full R&B
    .venv/bin/torchrun --nproc-per-node 2 examples/hf_trainer_rnb.py --ddp-backend gloo   # two processes
    .venv/bin/python examples/hf_trainer_rnb.py --task examples/data/champ_sources.jsonl \
        --text-field text --domain-field source

Everything is offline: the model is built from a config (random weights), text is read as bytes
(no tokenizer file), and the data is a local JSONL file with a "text", a "domain" and a "split"
per line (examples/data/champ_math.jsonl: competition-math problems and model solutions, 5
categories). Your own data file takes the flags `mixbench run` takes for it (--task PATH
--text-field ... or --prompt-field/--response-field, --domain-field, --split-field, --eval-file,
--eval-fraction; docs/data.md); your own model needs only a linear output layer.
"""

import argparse
import sys
from pathlib import Path

import datasets
import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel, PrinterCallback, TrainingArguments, set_seed

from mixbench.data.datafile import DataFile, add_arguments, from_arguments
from mixbench.data.file_examples import read_examples
from mixbench.errors import MixbenchError
from mixbench.integrations import MixingCallback, MixingTrainer, leave_process_group, regroup_texts

DATA = Path(__file__).with_name("data") / "champ_math.jsonl"
SEQ = 128
EOS = 256          # byte tokens 0..255, then the end-of-text token
IGNORE = -100      # label of a padding position: not scored


def tokenize(row):
    """Bytes as tokens; the loss is on the response (all of the text when there is no prompt)."""
    prompt, response = list(row["prompt"].encode("utf-8")), list(row["response"].encode("utf-8"))
    ids = (prompt + response)[:SEQ - 1] + [EOS]
    labels = ([IGNORE] * len(prompt) + response)[:SEQ - 1] + [EOS]
    pad = SEQ - len(ids)
    return {"input_ids": ids + [EOS] * pad, "attention_mask": [1] * len(ids) + [0] * pad,
            "labels": labels + [IGNORE] * pad}


def load(data_file: DataFile) -> tuple[datasets.Dataset, datasets.Dataset]:
    """The file's train and eval rows as datasets, read as `mixbench run --task PATH ...` reads them."""
    try:
        examples = read_examples(data_file)
    except MixbenchError as exc:   # bad input: one line, as mixbench says it
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    return tuple(datasets.Dataset.from_dict({"prompt": [e.prompt for e in split],
                                             "response": [e.response for e in split],
                                             "domain": [e.domain for e in split]})
                 for split in (examples.train, examples.eval))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)   # --task PATH and its field flags, as mixbench run takes them [DATA]
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--steps-per-round", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16, help="per process")
    parser.add_argument("--regroup", action="store_true", help="replace the domains by Regroup's clusters")
    parser.add_argument("--out", default="runs/hf_trainer_rnb")
    parser.add_argument("--ddp-backend", default=None, help="gloo for torchrun on CPUs")
    args = parser.parse_args()

    datasets.disable_progress_bars()   # its "Map" bars for a few hundred rows say nothing the table does not
    transformers.utils.logging.disable_progress_bar()   # nor do the checkpoints' "Writing model shards" bars
    train, evaluation = load(from_arguments(args) if args.task else DataFile(DATA, text_field="text",
                                                                             domain_field="domain"))
    if args.regroup:   # Regroup: embed the texts, cluster, keep the best silhouette (cached after the first run)
        texts = [[p + r for p, r in zip(d["prompt"], d["response"])] for d in (train, evaluation)]
        grouping = regroup_texts(*texts, k="2:12", embedder="tfidf")
        print(f"regrouped into k={grouping.k} domains (silhouette {grouping.silhouette:.3f})")
        train = train.remove_columns("domain").add_column("domain", grouping.train_domains)
        evaluation = evaluation.remove_columns("domain").add_column("domain", grouping.eval_domains)
    train, evaluation = (d.map(tokenize, remove_columns=["prompt", "response"]) for d in (train, evaluation))

    set_seed(0)   # the random initial weights too (the Trainer seeds only what comes after it)
    config = GPT2Config(vocab_size=EOS + 1, n_positions=SEQ, n_embd=64, n_layer=2, n_head=4,
                        bos_token_id=EOS, eos_token_id=EOS)
    model = GPT2LMHeadModel(config)
    # transformers finds a model's loss by its class name, and "GPT2LMHeadModel" names none: it warns
    # "loss_type=None ... unrecognized" and uses the causal-LM loss. Naming that loss says the same, quietly.
    model.loss_type = "ForCausalLM"
    mixing = MixingCallback("rnb", domain_column="domain", steps_per_round=args.steps_per_round,
                            eval_every_round=True, lam=3.0)
    training = TrainingArguments(output_dir=args.out, max_steps=args.steps, per_device_train_batch_size=args.batch_size,
                                 learning_rate=2e-3, warmup_steps=20, logging_steps=args.steps_per_round,
                                 save_steps=100, report_to="none", seed=0, disable_tqdm=True,
                                 dataloader_pin_memory=torch.cuda.is_available(),
                                 ddp_backend=args.ddp_backend, use_cpu=args.ddp_backend == "gloo")
    trainer = MixingTrainer(model=model, args=training, train_dataset=train, eval_dataset=evaluation,
                            callbacks=[mixing])
    trainer.remove_callback(PrinterCallback)   # the table below shows the rounds; it would print every log
    trainer.train()
    if trainer.is_world_process_zero():
        show(trainer, mixing.mixer.domains)
    del trainer, mixing
    leave_process_group()   # under torchrun: the DDP model freed, then the group left (a no-op otherwise)


def show(trainer, domains):
    """Every round's mixture once (the one it sampled from: p_0 uniform, then each round end's
    choice) and the per-domain eval loss at the end, from the Trainer's own log history."""
    rounds = [r for r in trainer.state.log_history if "mixing/round" in r]
    width = max(8, *map(len, domains))
    header = "  ".join(f"{d[:width]:>{width}}" for d in domains)
    print(f"\n{'step':>5}  {header}   (mixture sampled in the round ending at this step)")
    sampled = [1 / len(domains)] * len(domains)   # R&B starts uniform
    for r in rounds:
        print(f"{r['step']:>5}  " + "  ".join(f"{p:>{width}.3f}" for p in sampled))
        sampled = [r[f"mixture/{d}"] for d in domains]   # chosen at this round's end, for the next
    last = rounds[-1]
    losses = [last.get(f"eval_loss/{d}") for d in domains]   # absent for a domain with no eval rows
    print(f"{'eval':>5}  " + "  ".join(f"{x:>{width}.3f}" if x is not None else f"{'-':>{width}}" for x in losses)
          + "   (per-domain eval loss at the end)")
    unscored = [d for d, x in zip(domains, losses) if x is None]
    if unscored:
        print(f"{'':>5}  no eval loss for {', '.join(unscored)}: no eval rows in that domain (trained on, not scored)")


if __name__ == "__main__":
    main()
