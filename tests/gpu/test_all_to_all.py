"""The EP all-to-all: volume by hand and by enumerating every routing of a tiny layer; alpha-beta time."""

from __future__ import annotations

import itertools

import pytest

from twinfer.errors import ConfigError
from twinfer.gpu.all_to_all import all_to_all_time_s, dispatch_bytes_per_rank


def test_volume_by_hand():
    """4 tokens x top-2 x hidden 8 x 2 bytes, 4 ranks: 3/4 of the 128 bytes leave the rank = 96 bytes."""
    assert dispatch_bytes_per_rank(4, 2, 8, 2, 4) == 96.0
    assert dispatch_bytes_per_rank(4, 2, 8, 2, 1) == 0.0  # one rank keeps everything


def test_fraction_leaving_matches_every_uniform_routing():
    """8 experts on 4 ranks (2 each), top-2 without repeats: average the off-rank picks over all 28 expert pairs."""
    experts, ranks, top_k, hidden, nbytes, tokens = 8, 4, 2, 8, 2, 4
    home = {e: e // (experts // ranks) for e in range(experts)}  # rank 0 holds experts 0 and 1
    pairs = list(itertools.combinations(range(experts), top_k))
    off_rank_picks = sum(sum(home[e] != 0 for e in pair) for pair in pairs) / len(pairs)
    by_enumeration = tokens * off_rank_picks * hidden * nbytes
    assert dispatch_bytes_per_rank(tokens, top_k, hidden, nbytes, ranks) == pytest.approx(by_enumeration)


def test_alpha_beta_time_by_hand():
    """1 MB at 500 GB/s after 20 us: 22 us; nothing to move costs nothing."""
    assert all_to_all_time_s(1e6, 500e9, 20e-6) == pytest.approx(22e-6)
    assert all_to_all_time_s(0.0, 500e9, 20e-6) == 0.0


def test_bad_sizes_are_config_errors():
    with pytest.raises(ConfigError, match="ep >= 1"):
        dispatch_bytes_per_rank(4, 2, 8, 2, 0)
