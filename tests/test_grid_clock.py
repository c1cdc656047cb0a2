"""The compare grid's time-left estimate (mixbench.experiments.grid_clock), by hand."""

from mixbench.experiments.grid_clock import GridClock


def test_nothing_is_estimated_before_a_cell_ends_or_after_the_last():
    clock = GridClock(2)
    assert clock.left() == ""
    clock.finished(10.0)
    clock.finished(12.0)
    assert clock.left() == ""


def test_the_estimate_is_the_mean_cell_time_over_the_rounds_of_cells_left():
    clock = GridClock(7, jobs=2)
    clock.finished(300.0)
    clock.finished(360.0)
    # 5 cells left, 2 at a time: 3 rounds of 330 s each.
    assert clock.left() == "about 16 min left (5 cells, 2 at a time, at 330 s per cell so far)"
    for _ in range(4):
        clock.finished(330.0)
    assert clock.left() == "about 6 min left (1 cell, at 330 s per cell so far)"
