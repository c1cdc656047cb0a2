"""The one mixture-following sampler (mixbench's trainer and the integrations draw through it):
disjoint rank slices, each domain read in shuffled passes, the mixture followed, exact resume from
any step a loader has drawn past, and explicit weights for a unit drawn on a mixture of its own."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from mixbench.engine.sampler import LookaheadError, MixtureSampler, SamplerError

SIZES = (30, 50, 20)


def labels() -> np.ndarray:
    ids = np.concatenate([np.full(n, d) for d, n in enumerate(SIZES)])
    return np.random.default_rng(5).permutation(ids)


def sampler(**kw) -> MixtureSampler:
    settings = dict(batch_size=4, world_size=1, rank=0, seed=3)
    settings.update(kw)
    return MixtureSampler(labels(), len(SIZES), **settings)


def test_ranks_take_disjoint_slices_of_the_same_unit_in_accelerates_order():
    whole = sampler(world_size=2, rank=None, micro_batches=2)
    ranks = [sampler(world_size=2, rank=r, micro_batches=2) for r in range(2)]
    for _ in range(6):
        unit = whole.draw_unit()
        assert len(set(unit.tolist())) == unit.size == 16            # no example twice in a step
        chunks = unit.reshape(2 * 2, 4)                                # chunk k goes to rank k % 2
        for r, rank in enumerate(ranks):
            mine = np.concatenate([c for k, c in enumerate(chunks) if k % 2 == r])
            assert np.array_equal(rank._share(rank.draw_unit()), mine)


def test_each_domain_is_read_in_shuffled_passes_while_the_mixture_changes():
    """After every step, each example of a domain has been drawn as often as any other of the
    domain, or once more: a domain's examples are all drawn before any is drawn again."""
    s = sampler(batch_size=7)
    domain = s.domain_ids
    times = np.zeros(domain.size, dtype=int)
    for u in range(60):
        if u == 20:
            s.set_mixture([0.7, 0.1, 0.2], from_unit=20)
        unit = s.draw_unit()
        assert len(set(unit.tolist())) == unit.size
        np.add.at(times, unit, 1)
        for d in range(len(SIZES)):
            mine = times[domain == d]
            assert mine.max() - mine.min() <= 1, f"domain {d} repeated an example before drawing all of them"
    assert times.min() >= 1 and times.max() >= 8   # several passes of the favoured domain


def test_the_mixture_is_followed():
    s = sampler(batch_size=50)
    s.set_mixture([0.6, 0.3, 0.1], from_unit=0)
    counts = Counter(int(s.domain_ids[i]) for _ in range(40) for i in s.draw_unit())
    shares = np.array([counts[d] for d in range(3)]) / 2000
    assert np.allclose(shares, [0.6, 0.3, 0.1], atol=0.03)


def test_resume_from_a_step_the_loader_has_read_past_draws_the_same():
    s = sampler(batch_size=6)
    for _ in range(5):
        s.draw_unit()
    s.set_mixture([0.2, 0.2, 0.6], from_unit=7)          # a mixture set ahead, as a loader's look-ahead needs
    state = s.state_dict(3)                              # the state before step 3, two steps behind
    later = [s.draw_unit() for _ in range(5)]
    resumed = sampler(batch_size=6)
    resumed.load_state_dict(state)
    replayed = [resumed.draw_unit() for _ in range(7)]
    assert all(np.array_equal(a, b) for a, b in zip(replayed[2:], later))
    assert resumed.mixture_for(7).tolist() == pytest.approx([0.2, 0.2, 0.6])


def test_a_mixture_for_a_step_already_drawn_is_refused():
    s = sampler()
    s.draw_unit(), s.draw_unit()
    with pytest.raises(LookaheadError, match="already drawn 2 steps"):
        s.set_mixture([0.5, 0.25, 0.25], from_unit=1)


def test_a_loader_that_skips_the_trained_part_of_the_epoch_gets_stand_ins():
    s = sampler(batch_size=5, units_per_epoch=4, loader_skips_on_resume=True)
    expected = [s.draw_unit().tolist() for _ in range(8)]
    resumed = sampler(batch_size=5, units_per_epoch=4, loader_skips_on_resume=True)
    resumed.load_state_dict(s.state_dict(6))
    epoch = list(iter(resumed))                           # the epoch of step 6: steps 4..7
    assert len(epoch) == 20
    assert epoch[:10] == [len(labels())] * 10             # steps 4, 5: the loader skips them unread
    assert epoch[10:] == expected[6] + expected[7]


def test_a_domain_smaller_than_its_share_of_a_step_still_draws():
    s = MixtureSampler(np.array([0, 0, 1, 1, 1, 1, 1, 1]), 2, batch_size=6, seed=0)
    s.set_mixture([0.9, 0.1], from_unit=0)
    unit = s.draw_unit()
    assert unit.size == 6


@pytest.mark.parametrize("bad, message", [
    (dict(batch_size=0), "batch_size must be a positive integer"),
    (dict(rank=2, world_size=2), "rank must lie in"),
])
def test_bad_settings_are_named(bad, message):
    with pytest.raises(SamplerError, match=message):
        sampler(**bad)


def test_a_domain_without_examples_is_named():
    with pytest.raises(SamplerError, match=r"domain\(s\) \[2\] have no training examples"):
        MixtureSampler(np.array([0, 1, 0]), 3, batch_size=2)


def test_explicit_weights_draw_what_the_same_schedule_draws():
    """The trainer passes each step's mixture; a loader follows the schedule: the same units."""
    p, q = [0.2, 0.5, 0.3], [0.6, 0.2, 0.2]
    scheduled, explicit = sampler(batch_size=6), sampler(batch_size=6)
    scheduled.set_mixture(p, from_unit=0)
    scheduled.set_mixture(q, from_unit=3)
    for u in range(6):
        np.testing.assert_array_equal(explicit.draw_unit(p if u < 3 else q), scheduled.draw_unit())


def test_weights_for_one_unit_leave_the_streams_whole():
    """A probe step on a mixture of its own reads the same streams: still no example twice in a pass."""
    s = sampler(batch_size=5)
    domain0: list[int] = []
    for u in range(12):
        unit = s.draw_unit([1.0, 0.0, 0.0]) if u % 3 == 0 else s.draw_unit()
        mine = [int(i) for i in unit if labels()[i] == 0]
        if len(domain0) + len(mine) > SIZES[0]:   # the units that fit in the first pass
            break
        domain0 += mine
    assert len(domain0) >= 15 and len(set(domain0)) == len(domain0)
