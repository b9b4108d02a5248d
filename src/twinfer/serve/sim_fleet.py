"""The twinfer fleet simulator (:class:`twinfer.sim.cluster.FleetSim`) as a paced fleet.

Wraps the simulator's incremental mode (``submit``, ``run_until``,
``on_first_token`` / ``on_token`` / ``on_finish`` callbacks) into the
:class:`twinfer.serve.pacing.FleetSim` protocol the server drives.

Cancellation: the simulator has no cancel call (yet), so a cancelled request
is removed from its instance's waiting queue when it has not started, and
otherwise truncated so it leaves at the end of the step in flight (a decoding
request) or right after its prefill (a prefilling or transferring request) —
the step boundary at which real engines (vLLM's ``abort``) free a request's
slot and KV blocks. If the simulator grows a ``cancel(request)`` method, it is
used instead.
"""

from __future__ import annotations

import heapq

from twinfer.errors import CapacityError
from twinfer.serve.pacing import TokenEvent
from twinfer.sim.cluster import FleetSim as ClusterSim
from twinfer.sim.request import Request

INF = float("inf")
#: Request.where codes of twinfer.sim.request (0 new, 1 waiting, 2 prefilling, 3 decoding, 4 in transfer, 5 done).
WAITING, DECODING, DONE, REJECTED = 1, 3, 5, 6


class SimulatedFleet:
    """One simulated fleet stepping request by request; tokens are reported as TokenEvents."""

    def __init__(self, sim: ClusterSim) -> None:
        self.sim = sim
        self._live: dict[int, Request] = {}  # rid -> request, until its last token or cancel
        self._events: list[TokenEvent] = []
        self.unfreed_cancels = 0  # cancels the adapter could not apply (see cancel)
        sim.on_first_token = self._on_first
        sim.on_token = self._on_token
        sim.on_finish = self._on_finish

    # ---- callbacks from the simulator ---------------------------------------
    def _emit(self, r: Request, time_s: float, generated: int) -> None:
        if r.rid not in self._live:
            return
        last = generated >= r.output_tokens
        self._events.append(TokenEvent(key=r.rid, index=generated - 1, time_s=time_s, last=last))
        if last:
            del self._live[r.rid]

    def _on_first(self, r: Request, time_s: float) -> None:
        self._emit(r, time_s, 1)

    def _on_token(self, r: Request, time_s: float, generated: int) -> None:
        self._emit(r, time_s, generated)

    def _on_finish(self, r: Request, time_s: float) -> None:
        if r.rid in self._live:  # finished without its last token reported: should not happen
            raise RuntimeError(
                f"simulated request {r.rid} finished at {time_s} without its last token"
            )

    # ---- FleetSim protocol ----------------------------------------------------
    def fits(self, prompt_tokens: int, max_tokens: int) -> bool:
        """Whether one request of this size fits an empty instance's KV cache (else the sim rejects it)."""
        sim = self.sim
        entry = sim.entry.instances[0].sched
        if sim.mode == "aggregated":
            return entry.fits_ever(prompt_tokens + max_tokens)
        last = sim.last_pool.instances[0].sched
        return entry.fits_ever(prompt_tokens) and last.fits_ever(prompt_tokens + max_tokens)

    def submit(self, prompt_tokens: int, max_tokens: int, arrival_s: float) -> int:
        """Add a request now; CapacityError when it can never fit the fleet's KV cache."""
        if not self.fits(prompt_tokens, max_tokens):
            raise CapacityError(
                f"a request of {prompt_tokens} prompt + {max_tokens} output tokens does not fit the KV cache "
                "of one instance of the simulated fleet; reduce the prompt or max_tokens"
            )
        r = self.sim.submit(prompt_tokens, max_tokens, arrival_s)
        self._live[r.rid] = r
        return r.rid

    def run_until(self, t_s: float) -> list[TokenEvent]:
        """Advance the simulator to ``t_s``; the tokens produced on the way."""
        self._events = []
        self.sim.run_until(t_s)
        return self._events

    def next_event_s(self) -> float | None:
        """Time of the simulator's next event (None when idle)."""
        t = self.sim.env.peek()
        return None if t == INF else t

    def cancel(self, key: int, at_s: float) -> None:
        """Remove or truncate the request (see the module docstring)."""
        r = self._live.pop(key, None)
        if r is None or r.where in (DONE, REJECTED):
            return
        native = getattr(self.sim, "cancel", None)
        if callable(native):
            native(r)
            return
        try:
            if r.where == WAITING and self._drop_waiting(r, at_s):
                return
            self._truncate(r)
        except AttributeError:
            # The simulator's internals changed under this adapter: the request then runs to its
            # end in the simulation (its tokens are dropped) instead of freeing its slot early.
            self.unfreed_cancels += 1

    # ---- cancellation on the simulator's data structures ------------------------
    def _drop_waiting(self, r: Request, at_s: float) -> bool:
        for inst in self.sim.instances:
            sched = inst.sched
            if r in sched.waiting:
                sched.waiting.remove(r)
                sched.outstanding -= r.prefill_target - r.computed + r.output_tokens - r.generated
                sched.free_blocks += r.blocks
                r.blocks = 0
                # queue counters live on the instance (newer simulator) or on its pool
                counters = inst if hasattr(inst, "change") else inst.pool
                counters.change(at_s, -1, -1)
                r.where = DONE
                return True
        return False

    def _truncate(self, r: Request) -> None:
        if r.where == DECODING:
            sched = self.sim.instances[r.decode_instance].sched
            generated = sched.tokens_of(r)
            new_output = generated + 1  # the token of the step in flight is its last
            sched.outstanding -= r.output_tokens - new_output
            r.output_tokens = new_output
            # finish when the step in flight ends (decode-step counter dstep + 1); the old
            # finish entry is dropped as stale because leaving bumps r.epoch
            sched._seq += 1
            heapq.heappush(sched._finish_heap, (sched.dstep + 1, sched._seq, r, r.epoch))
            return
        # prefilling, prefilled and waiting to join, or KV in transfer: the next token is its last
        r.output_tokens = min(r.output_tokens, r.generated + 1)
