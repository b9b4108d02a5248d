"""A multi-chip LPU system: N chips, their topology, and the hops and links between any two.

Topology after Abts et al., ISCA 2022 (P2): a GroqNode is ``chips_per_node``
chips fully connected by direct C2C links (7 peers for 8 chips); nodes in a
rack (``chips_per_rack`` chips, 72 for TSP v1) and racks are joined
Dragonfly-style through each chip's remaining (global) ports. Every TSP is
both endpoint and switch, and the compiler schedules every link: there is no
run-time arbitration. Hop counts between nodes and racks are named,
overridable parameters (see :class:`TopologyParams`).
"""

from __future__ import annotations

from dataclasses import dataclass

from twinfer.errors import ConfigError
from twinfer.lpu.chip import Chip


@dataclass(frozen=True)
class TopologyParams:
    """Hop counts of the system's routes (P2 gives only bounds: keep them overridable)."""

    hops_same_node: int = 1  # P2: direct link between any two chips of a node
    hops_same_rack: int = 2  # guess from P2's Dragonfly: a global link into the other node + one local hop
    hops_other_rack: int = 3  # guess: local hop to a rack gateway, rack-to-rack link, local hop (P2: <= 5 at full scale)
    hops_other_rack_large: int = 5  # P2: at most 5 hops at full scale (10,440 TSPs) [uncertain]
    direct_rack_links_max_racks: int = 33  # guess: beyond this many racks routes need an intermediate rack


@dataclass(frozen=True)
class System:
    """``num_chips`` identical chips wired as nodes and racks; answers hop counts and link ports."""

    chip: Chip
    num_chips: int
    topology: TopologyParams = TopologyParams()

    def __post_init__(self) -> None:
        if self.num_chips < 1:
            raise ConfigError(f"an LPU system needs at least 1 chip, got {self.num_chips}")

    @property
    def chips_per_node(self) -> int:
        """Chips fully connected inside one node."""
        return max(1, min(self.chip.spec.chips_per_node, self.num_chips))

    @property
    def chips_per_rack(self) -> int:
        """Chips in one rack."""
        return max(self.chips_per_node, self.chip.spec.chips_per_rack)

    @property
    def num_racks(self) -> int:
        """Racks the system spans."""
        return -(-self.num_chips // self.chips_per_rack)

    def _check(self, c: int) -> None:
        if not 0 <= c < self.num_chips:
            raise ConfigError(f"chip {c} is outside this {self.num_chips}-chip system")

    def hops(self, src: int, dst: int) -> int:
        """C2C hops on the route from ``src`` to ``dst`` (0 for the same chip)."""
        self._check(src)
        self._check(dst)
        t = self.topology
        if src == dst:
            return 0
        if src // self.chips_per_node == dst // self.chips_per_node:
            return t.hops_same_node
        if src // self.chips_per_rack == dst // self.chips_per_rack:
            return t.hops_same_rack
        if self.num_racks <= t.direct_rack_links_max_racks:
            return t.hops_other_rack
        return t.hops_other_rack_large

    def port(self, src: int, dst: int) -> int:
        """The link (port index) ``src`` uses for the first hop toward ``dst``.

        Inside a node, ports 0..n-2 go to the n-1 peers in order; routes that
        leave the node use the global ports that follow, picked by the
        destination chip so that a chip's transfers to the counterparts in
        several other nodes (a hierarchical all-reduce) spread over them.
        """
        n = self.chips_per_node
        if src // n == dst // n:
            a, b = src % n, dst % n
            return b if b < a else b - 1
        global_ports = max(1, self.chip.spec.c2c_links - (n - 1))
        return (n - 1) + dst % global_ports

    def transfer_latency_cycles(self, src: int, dst: int) -> int:
        """Cycles of flight from ``src`` to ``dst``: hops x per-hop latency."""
        return self.hops(src, dst) * self.chip.hop_latency_cycles

    @property
    def total_sram_bytes(self) -> int:
        """SRAM of all chips together."""
        return int(self.chip.spec.sram_bytes) * self.num_chips
