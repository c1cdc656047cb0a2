"""The pluggable-model path: an HF causal LM loaded from a local directory, trained with the tap.

The model and tokenizer are built here, offline, and saved with save_pretrained: the same
files a downloaded checkpoint has, so the loader is the real one."""

import pytest

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from mixbench.algorithms.rnb import RnB  # noqa: E402
from mixbench.tasks.synthetic import Synthetic  # noqa: E402

from mixbench.engine.trainer import train  # noqa: E402
from mixbench.errors import MixbenchError  # noqa: E402


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-gpt2")
    task = Synthetic()
    texts = [e.prompt + e.response for e in task.load().train]
    tok = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tokenizers.decoders.ByteLevel()
    tok.train_from_iterator(texts, tokenizers.trainers.BpeTrainer(
        vocab_size=120, special_tokens=["<unk>", "<eos>"],
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet()))
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", unk_token="<unk>")
    fast.save_pretrained(path)
    config = transformers.GPT2Config(vocab_size=len(fast), n_positions=64, n_embd=32, n_layer=1, n_head=2,
                                     eos_token_id=fast.eos_token_id, bos_token_id=fast.eos_token_id)
    transformers.GPT2LMHeadModel(config).save_pretrained(path)
    return path


def test_hf_model_trains_with_the_gradient_tap(hf_dir):
    task = Synthetic()
    cfg = task.budget.override(steps=20, steps_per_round=5, model=str(hf_dir), lr=1e-2)
    history = train(task.load(), RnB(), cfg, progress=False)
    assert history.final_mean_eval_loss < history.initial_mean_eval_loss
    report = history.meter.report()
    assert report.flops_by_label["tap/accumulate"] > 0 and report.paper_flops > 0
    assert history.rounds[-1].mixture != history.rounds[0].mixture


def test_missing_model_dir_is_a_clear_error(tmp_path):
    task = Synthetic()
    cfg = task.budget.override(steps=2, steps_per_round=1, model=str(tmp_path / "nope"))
    with pytest.raises(MixbenchError, match="not a directory"):
        train(task.load(), RnB(), cfg, progress=False)
    cfg = task.budget.override(steps=2, steps_per_round=1, model=str(tmp_path))
    with pytest.raises(MixbenchError, match="cannot load an HF causal LM"):
        train(task.load(), RnB(), cfg, progress=False)
