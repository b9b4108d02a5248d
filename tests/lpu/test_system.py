"""System topology: hop counts of nodes and racks (P2) and link ports."""

from __future__ import annotations

import pytest

from twinfer.errors import ConfigError
from twinfer.lpu.system import System


def test_hops_by_node_and_rack(tsp):
    s = System(tsp, 576)  # 8 racks of 72 = 9 nodes of 8 each
    assert s.hops(3, 3) == 0
    assert s.hops(0, 7) == 1  # same node: direct link
    assert s.hops(0, 8) == 2  # next node, same rack
    assert s.hops(0, 71) == 2
    assert s.hops(0, 72) == 3  # next rack
    assert s.num_racks == 8


def test_ports_to_node_peers_are_distinct(tsp):
    s = System(tsp, 16)
    for src in range(8):
        ports = [s.port(src, d) for d in range(8) if d != src]
        assert sorted(ports) == list(range(7))
    assert s.port(0, 8) >= 7  # leaving the node uses a global port


def test_bad_chip_counts(tsp):
    with pytest.raises(ConfigError):
        System(tsp, 0)
    with pytest.raises(ConfigError):
        System(tsp, 4).hops(0, 4)
