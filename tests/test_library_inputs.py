"""The library's own inputs, checked where a user's training hands them over: each bad one is one
IntegrationError (a MixbenchError and a ValueError) naming the problem, never a silent guess (a
domain id of 0.7 truncated to domain 0, a NaN label made a domain "nan"), a raw error from deep
inside torch, or an endless loop.

    domain ids      integers in [0, m): not 0.7, not NaN, not "a", not out of range
    labels          a string or a number: not None, blank, NaN or a list
    a mixing state  its content digest matches, it has every part, its sampler streams fit
    a sampler state no stream past its domain's end (drawing from one never ended)
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mixbench.engine.codec import decode, encode
from mixbench.engine.sampler import MixtureSampler, SamplerError
from mixbench.integrations import DomainMixer, IntegrationError
from mixbench.integrations.domains import DomainIndex
from mixbench.storage.digest import DIGEST_KEY, content_digest

LABELS = ["a", "b", "c"] * 10


def mixer() -> DomainMixer:
    return DomainMixer("stratified", head=None, train_domains=LABELS, total_steps=20, steps_per_round=5, batch_size=4)


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and isinstance(exc.value, ValueError)
    return message


@pytest.mark.parametrize("ids,message", [
    (torch.tensor([0.0, 0.7, 1.0]), "domain ids must be whole numbers, got 0.699999988079071 at position 1"),
    (torch.tensor([0.0, float("nan")]), "domain ids must be whole numbers, got nan at position 1"),
    (np.array(["a", "b"]), "domain ids must be integers in [0, 3), got 'a' at position 0"),
    (["0", 1], "domain ids must be integers in [0, 3), got '0' at position 0"),
    (torch.tensor([0, 3]), "domain ids must lie in [0, 3), got 3 at position 1"),
    (torch.tensor([[0, 1]]), "domain ids must be a (B,) tensor of values in [0, 3), got shape (1, 2)"),
])
def test_a_domain_id_that_is_no_domain_is_one_line(ids, message):
    with pytest.raises(IntegrationError) as exc, mixer().batch(ids):
        pass
    assert one_line(exc) == message
    with pytest.raises(IntegrationError):
        mixer().record_losses(ids, torch.ones(2))


def test_whole_float_domain_ids_count_as_their_domains():
    m = mixer()
    with m.batch(torch.tensor([0.0, 2.0, 2.0])):
        pass
    assert m.driver.counts.tolist() == [1, 0, 2]


@pytest.mark.parametrize("bad,message", [
    (float("nan"), "training example 3 has domain label nan: a missing value, not a domain name"),
    (np.float32("inf"), "training example 3 has domain label inf"),
    (None, "training example 3 has no domain label"),
    ("  ", "training example 3 has no domain label"),
    (["a"], "training example 3 has a domain label of type list (['a']): a label is a string or a number"),
    (True, "training example 3 has a domain label of type bool"),
])
def test_a_label_that_names_no_domain_is_one_line(bad, message):
    labels = ["a", "b", "c", bad]
    with pytest.raises(IntegrationError) as exc:
        DomainIndex.from_labels(labels)
    assert message in one_line(exc)
    with pytest.raises(IntegrationError, match="training example 3"):
        DomainIndex(("a", "b", "c")).ids(labels)


def test_numbers_are_labels_named_as_str_names_them():
    assert DomainIndex.from_labels([3, 1.5, np.int64(3), "x"]).names == ("1.5", "3", "x")


def test_a_mixing_state_is_refused_when_damaged_or_incomplete():
    state = mixer().state_dict()
    mixer().load_state_dict(state)   # whole: taken
    changed = {**state, "step": 7}
    with pytest.raises(IntegrationError) as exc:
        mixer().load_state_dict(changed, source="ckpt/mixing.pt")
    assert one_line(exc) == "ckpt/mixing.pt is damaged: its content does not match the digest it was written with"
    incomplete = {k: v for k, v in state.items() if k != "meter"}
    incomplete[DIGEST_KEY] = content_digest(incomplete)   # made by hand, not damaged
    with pytest.raises(IntegrationError, match=r"^the saved mixing state is damaged \(it lacks meter\)$"):
        mixer().load_state_dict(incomplete)
    with pytest.raises(IntegrationError, match="carries no content digest"):
        mixer().load_state_dict({k: v for k, v in state.items() if k != DIGEST_KEY})


def test_a_sampler_state_past_a_domains_end_is_refused_not_drawn_forever():
    """A stream at a position past its domain's end read nothing and waited for ever; such a state
    (no sampler saves one) is refused, through the sampler and through a mixing state."""
    ids = np.repeat(np.arange(3), 10)
    sampler = MixtureSampler(ids, 3, batch_size=4)
    for _ in range(3):
        sampler.draw_unit()
    state = sampler.state_dict()
    damaged = {**state, "streams": [list(s) for s in state["streams"]]}
    damaged["streams"][1][1] = 57
    fresh = MixtureSampler(ids, 3, batch_size=4)
    with pytest.raises(SamplerError, match="domain 1's stream is at position 57 of a domain of 10 examples"):
        fresh.load_state_dict(damaged)
    assert fresh.units_drawn == 0   # unchanged
    for key, value, message in [("unit", -1, "its step is -1, not a count"),
                                ("streams", state["streams"][:2], "2 domain streams for 3 domains"),
                                ("schedule", [], "its mixtures are not scheduled from its step on")]:
        with pytest.raises(SamplerError, match=message):
            fresh.load_state_dict({**state, key: value})
    fresh.load_state_dict(state)
    assert np.array_equal(fresh.draw_unit(), sampler.draw_unit())

    # The same state inside a DomainMixer's (whose digest is recomputed, as a hand-made state's would be).
    m = mixer()
    saved = m.state_dict()
    streams = decode(saved["sampler"])
    streams["streams"] = [[e, 99, moved] for e, _, moved in streams["streams"]]
    saved = {**saved, "sampler": encode(streams, "sampler state")}
    saved[DIGEST_KEY] = content_digest(saved)
    with pytest.raises(IntegrationError) as exc:
        mixer().load_state_dict(saved)
    assert "does not fit this run: the saved sampler state is damaged: domain 0's stream is at position 99" \
        in one_line(exc)
