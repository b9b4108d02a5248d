"""The twinfer fleet simulator (:class:`twinfer.sim.cluster.FleetSim`) as a paced fleet.

Wraps the simulator's incremental mode (``submit``, ``run_until``,
``on_first_token`` / ``on_token`` / ``on_finish`` callbacks) into the
:class:`twinfer.serve.pacing.FleetSim` protocol the server drives.

Cancellation goes through :meth:`twinfer.sim.cluster.FleetSim.cancel`: a
request still queued leaves at once, one in a batch at its instance's next
step boundary (the token of the step in flight is dropped here), the step
boundary at which real engines (vLLM's ``abort``) free a request's slot and KV.
"""

from __future__ import annotations

from twinfer.errors import CapacityError
from twinfer.serve.pacing import TokenEvent
from twinfer.sim.cluster import FleetSim as ClusterSim
from twinfer.sim.request import Request

INF = float("inf")


class SimulatedFleet:
    """One simulated fleet stepping request by request; tokens are reported as TokenEvents."""

    def __init__(self, sim: ClusterSim) -> None:
        self.sim = sim
        self._live: dict[int, Request] = {}  # rid -> request, until its last token or cancel
        self._sent: dict[int, int] = {}  # rid -> tokens reported so far
        self._events: list[TokenEvent] = []
        sim.on_first_token = self._on_first
        sim.on_token = self._on_token
        sim.on_finish = self._on_finish

    # ---- callbacks from the simulator ---------------------------------------
    def _emit(self, r: Request, time_s: float, generated: int) -> None:
        """Report tokens up to the ``generated``-th; a multi-token decode step brings several at one time."""
        if r.rid not in self._live:
            return
        for index in range(self._sent.get(r.rid, 0), generated):
            self._events.append(TokenEvent(key=r.rid, index=index, time_s=time_s, last=index + 1 >= r.output_tokens))
        self._sent[r.rid] = generated
        if generated >= r.output_tokens:
            del self._live[r.rid]
            del self._sent[r.rid]

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
        return self.sim.fits(prompt_tokens, max_tokens)

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
        """Cancel the request in the simulation (see the module docstring); its later tokens are dropped."""
        r = self._live.pop(key, None)
        self._sent.pop(key, None)
        if r is not None:
            self.sim.cancel(r)
