"""The disaggregated hand-off: a prefilled request reserves KV on a decode instance and its KV crosses a link.

:class:`twinfer.sim.cluster.FleetSim` inherits these steps. After its prefill
a request asks the decode pool's router for an instance with KV room (any
other instance with room if that one has none; else it waits in the pool's
queue, still holding its prefill KV, until :meth:`KvHandoff.drain_pending`);
its KV then crosses the prefill instance's outbound link (all of it, or with
layer-wise streaming only what the prefill did not hide), and decode takes
over when the last byte lands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twinfer.sim.request import Request, RequestState
from twinfer.sim.scheduler import BLOCKED_NONE

if TYPE_CHECKING:
    from twinfer.sim.env import Environment
    from twinfer.sim.instance import Instance
    from twinfer.sim.link import KvLink
    from twinfer.sim.pool import LinkSetup, Pool

CANCELLED, TRANSFERRING = RequestState.CANCELLED, RequestState.TRANSFERRING


class KvHandoff:
    """Hand-off steps of a fleet; the attributes below are the fleet's (set by ``FleetSim.__init__``)."""

    env: Environment
    pools: dict[str, Pool]
    links: list[KvLink]
    link_setup: LinkSetup | None
    kv_bytes_per_token: float
    num_layers: int
    kv_bytes: float
    cancelled: int
    draining: set[int]

    def _leave_prefill_instance(self, r: Request, src: Instance, now: float) -> None:
        raise NotImplementedError

    def left_cancelled(self, inst: Instance, count: int) -> None:
        raise NotImplementedError

    def _handoff(self, r: Request, src: Instance) -> None:
        dec = self.pools["decode"]
        now = self.env.now
        if r.cancelled:  # cancelled during its prefill: its KV goes nowhere
            self._leave_prefill_instance(r, src, now)
            r.state = CANCELLED
            self.cancelled += 1
            return
        dec.change(now, 1, 1)
        target: Instance | None = dec.routable[dec.pick(dec.load, r)]
        assert target is not None
        code = target.sched.try_reserve_remote(r)
        if code != BLOCKED_NONE:
            target = None
            for cand in dec.routable:
                code = cand.sched.try_reserve_remote(r)
                if code == BLOCKED_NONE:
                    target = cand
                    break
            if target is None:
                dec.last_block = code
                dec.pending.append((r, src))
                return
        dec.change(now, -1, -1)
        target.change(now, 0, 1)
        self._start_transfer(r, src, target)

    def drain_pending(self, inst: Instance) -> None:
        """Move waiting hand-offs to ``inst`` while it has KV room (a decode instance that freed some)."""
        if self.draining and inst.index in self.draining:
            return  # a draining instance takes no new work
        dec = self.pools["decode"]
        now = self.env.now
        while dec.pending:
            r, src = dec.pending[0]
            code = inst.sched.try_reserve_remote(r)
            if code != BLOCKED_NONE:
                dec.last_block = code
                return
            dec.pending.popleft()
            dec.change(now, -1, -1)
            inst.change(now, 0, 1)
            self._start_transfer(r, src, inst)

    def _start_transfer(self, r: Request, src: Instance, dst: Instance) -> None:
        link = self.links[src.local_index]
        nbytes = r.prompt_tokens * self.kv_bytes_per_token
        self.kv_bytes += nbytes
        send = nbytes
        if self.link_setup is not None and self.link_setup.layerwise:
            # Layer-wise streaming (Splitwise): earlier layers' KV moved while the prompt was
            # computed; at least the last layer's share is left. Approximation: the streamed part
            # does not contend with other transfers on the link.
            during = (r.prefill_end_s - r.prefill_start_s) * link.bw_bytes_per_s
            send = max(nbytes / self.num_layers, nbytes - during)
        r.kv_start_s = self.env.now
        r.decode_instance = dst.index
        r.state = TRANSFERRING
        link.start(r.rid, send, self._transfer_done, (r, src, dst))

    def _transfer_done(self, item: tuple[Request, Instance, Instance]) -> None:
        r, src, dst = item
        now = self.env.now
        r.kv_end_s = now
        self._leave_prefill_instance(r, src, now)
        if r.cancelled:  # cancelled while its KV moved: free the room reserved for it
            dst.sched.drop_reserved(r)
            dst.change(now, 0, -1)
            self.cancelled += 1
            self.left_cancelled(dst, 0)
            return
        r.instance = dst.index
        dst.sched.arrived_remote(r)
        dst.wake()
