"""A fleet: pools of instances, routers, KV links, and the event loop that joins them.

Aggregated mode has one ``mixed`` pool. Disaggregated mode has a ``prefill`` pool
and a ``decode`` pool: a request is prefilled (its first token comes from the
prefill instance, as in DistServe and Splitwise), a decode instance reserves KV
for it, its KV crosses the prefill instance's outbound link, and decode
produces the remaining tokens. If no decode instance has room the request
waits in the decode pool's queue while still holding its prefill KV.

Two ways to drive it: batch (``load_workload`` arrays, then ``run_until``) and
incremental (``submit`` requests and ``run_until`` a wall-clock-paced time, with
``on_first_token`` / ``on_token`` / ``on_finish`` callbacks), for the emulation server.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from typing import Any

from twinfer.errors import ConfigError
from twinfer.sim.env import PRIO_ARRIVAL, PRIO_SAMPLE, PRIO_START, PRIO_STEP_END, Environment
from twinfer.sim.handoff import KvHandoff
from twinfer.sim.instance import Instance
from twinfer.sim.kinds import FLEET_LAYOUTS, INSTANCE_KINDS
from twinfer.sim.link import KvLink
from twinfer.sim.pool import LinkSetup, Pool, PoolSetup, make_scheduler
from twinfer.sim.request import Request, RequestState
from twinfer.sim.scheduler import SchedulerOutput, StepResult

__all__ = ["FleetSim", "LinkSetup", "PoolSetup"]

INF = float("inf")
# RequestState members as module constants (reading one off its enum class costs ~170 ns)
NEW, DECODING, TRANSFERRING, DONE = RequestState.NEW, RequestState.DECODING, RequestState.TRANSFERRING, RequestState.DONE
REJECTED, CANCELLED = RequestState.REJECTED, RequestState.CANCELLED


class FleetSim(KvHandoff):
    """Simulates one fleet on one workload; see the module docstring for the two driving modes."""

    def __init__(
        self,
        pools: Sequence[PoolSetup],
        *,
        kv_bytes_per_token: float,
        num_layers: int,
        link: LinkSetup | None = None,
        record_timeline: bool = False,
        sample_interval_s: float | None = None,
        track_tokens: bool = False,
    ) -> None:
        roles = tuple(sorted(p.role for p in pools))
        layout = FLEET_LAYOUTS.get(roles)
        if layout is None:
            options = " or ".join(v.pools_text for v in FLEET_LAYOUTS.values())
            raise ConfigError(f"pools must be {options}, got {list(roles)}")
        self.mode = layout.mode
        if any(INSTANCE_KINDS[r].hands_off for r in roles) and link is None:
            raise ConfigError(f"a {layout.mode} fleet needs a KV link (kv_link)")
        self.env = Environment()
        self.kv_bytes_per_token = float(kv_bytes_per_token)
        self.num_layers = int(num_layers)
        self.link_setup = link
        self.timeline: list[tuple] | None = [] if record_timeline else None
        self.on_first_token: Callable[[Request, float], None] | None = None
        self.on_token: Callable[[Request, float, int], None] | None = None
        self.on_finish: Callable[[Request, float], None] | None = None
        self.pools: dict[str, Pool] = {}
        self.instances: list[Instance] = []
        self._track_tokens = track_tokens
        for setup in pools:
            if setup.count < 1:
                raise ConfigError(f"{setup.role} pool: count must be >= 1, got {setup.count}")
            pool = Pool(setup.role, setup)
            self.pools[setup.role] = pool
            for _ in range(setup.count):
                self._new_instance(pool)
        self.entry = self.pools[layout.entry]
        self.last_pool = self.pools[layout.last]
        self.links: list[KvLink] = []
        if self.entry is not self.last_pool:
            for _ in self.entry.instances:
                self._new_link()
        self.requests: list[Request] = []
        self.kv_bytes = 0.0
        self.rejected = 0
        self.completed = 0
        self.cancelled = 0  # requests that left through cancel()
        self._arr_t: list[float] = []
        self._arr_p: list[int] = []
        self._arr_o: list[int] = []
        self._arr_k: Sequence[object] | None = None  # per request prefix chain keys (prefix caching)
        self._arr_i = 0
        self._sample_dt = sample_interval_s
        self._sampling = False
        self._next_sample = INF
        #: Instances may run steps inline (no heap events) up to this time. Only aggregated
        #: fleets without callbacks use it: their instances interact only through arrivals
        #: (routing reads instance state) and sampling, which bound it. Otherwise -inf.
        self.horizon = -INF
        self.inline_ok = self.mode == "aggregated"
        self.lazy = False  # steps wait in Instance.pending_end instead of the heap (see _run_lazy)
        #: Instances that received a request and wait to be woken once every arrival at this
        #: time is routed (a PRIO_START event), so simultaneous arrivals share one first step.
        self._to_wake: list[Instance] = []
        #: An autoscaling fleet's planner (twinfer.sim.rebalancer.Rebalancer attaches itself), and the
        #: global indices of its instances that take no new work while their requests drain.
        self.rebalancer: Any = None
        self.draining: set[int] = set()

    def _new_instance(self, pool: Pool) -> Instance:
        """Append a fresh instance (its own scheduler, empty KV) to ``pool`` and the fleet; it is not routable yet."""
        setup = pool.setup
        sched = make_scheduler(setup, pool.kv_tokens, pool.max_seqs, self._track_tokens)
        inst = Instance(self.env, len(self.instances), len(pool.instances), pool.role, setup.cost, sched, self,
                        self.timeline)
        pool.instances.append(inst)
        self.instances.append(inst)
        return inst

    def _new_link(self) -> KvLink:
        """The outbound KV link of the entry pool's next instance (``links[i]`` serves its ``i``-th instance)."""
        setup = self.link_setup
        assert setup is not None
        link = KvLink(self.env, len(self.links), setup.bw_bytes_per_s, setup.latency_s, self.timeline)
        self.links.append(link)
        return link

    def add_instance(self, role: str) -> Instance:
        """A new instance of pool ``role``, with its KV link on the entry pool of a disaggregated fleet (autoscaling)."""
        pool = self.pools[role]
        inst = self._new_instance(pool)
        if pool is self.entry and self.entry is not self.last_pool:
            self._new_link()
        return inst

    # ---- feeding requests ---------------------------------------------------------
    def load_workload(self, arrival_s: Sequence[float], prompt_tokens: Sequence[int], output_tokens: Sequence[int],
                      prefix_keys: Sequence[object] | None = None) -> None:
        """Queue a whole workload (sorted by arrival) for batch runs; requests are created as they arrive.

        ``prefix_keys`` gives each request the chain keys of its full prefix blocks, for pools with a
        prefix cache (:mod:`twinfer.sim.prefix_sched`).
        """
        self._arr_t = [float(x) for x in arrival_s]
        self._arr_p = [int(x) for x in prompt_tokens]
        self._arr_o = [int(x) for x in output_tokens]
        if any(b < a for a, b in zip(self._arr_t, self._arr_t[1:], strict=False)):
            raise ConfigError("workload arrivals must be sorted by time")
        if any(p < 1 for p in self._arr_p) or any(o < 1 for o in self._arr_o):
            raise ConfigError("every request needs >= 1 prompt token and >= 1 output token")
        if prefix_keys is not None and len(prefix_keys) != len(self._arr_t):
            raise ConfigError(f"prefix_keys has {len(prefix_keys)} entries for {len(self._arr_t)} requests")
        self._arr_k = prefix_keys
        self._arr_i = 0
        self._start_sampling()

    def submit(self, prompt_tokens: int, output_tokens: int, at_s: float | None = None, user: object = None) -> Request:
        """Inject one request arriving at ``at_s`` (default: now); returns it (its ``rid`` is its row)."""
        if prompt_tokens < 1 or output_tokens < 1:
            raise ConfigError("a request needs >= 1 prompt token and >= 1 output token")
        t = self.env.now if at_s is None else max(self.env.now, float(at_s))
        r = Request(len(self.requests), t, int(prompt_tokens), int(output_tokens))
        r.user = user
        self.requests.append(r)
        if self.inline_ok:
            self.inline_ok = False  # live arrivals sit in the heap: every step must go through it
            self._leave_lazy()
        self.env.schedule(t, PRIO_ARRIVAL, self._arrive, r)
        self._start_sampling()
        if self.rebalancer is not None:
            self.rebalancer.resume(t)
        return r

    def _leave_lazy(self) -> None:
        """Put every step or decode run that a batch run left in flight on the heap, as the plain loop needs."""
        now = self.env.now
        for inst in self.instances:
            inst.interrupt_run(now)  # a committed run ends with the step in flight now
            if inst.pending_end != INF:
                self.env.schedule(inst.pending_end, PRIO_STEP_END, inst.catch_up, inst.pending_end)

    def _start_sampling(self) -> None:
        if self._sample_dt and not self._sampling:
            self._sampling = True
            self._next_sample = self.env.now
            self.env.schedule(self.env.now, PRIO_SAMPLE, self._sample, None)

    def _sample(self, _: object) -> None:
        now = self.env.now
        for pool in self.pools.values():
            waiting = pool.waiting + sum(i.waiting for i in pool.instances)
            held = pool.held + sum(i.held for i in pool.instances)
            pool.series_t.append(now)
            pool.series_waiting.append(waiting)
            pool.series_running.append(held - waiting)
        if len(self.env) or self._arr_i < len(self._arr_t) or any(i.busy for i in self.instances):
            self._next_sample = now + self._sample_dt  # type: ignore[operator]
            self.env.schedule(self._next_sample, PRIO_SAMPLE, self._sample, None)
        else:
            self._sampling = False
            self._next_sample = INF

    # ---- the loop -------------------------------------------------------------------
    def _lazy_ok(self) -> bool:
        return (self.inline_ok and self.on_token is None and self.on_first_token is None
                and self.on_finish is None)

    def run_until(self, t_stop: float = INF) -> None:
        """Process every arrival and event up to ``t_stop`` (inf: until all work is done).

        Python's cyclic garbage collector is paused meanwhile: the loop makes no
        reference cycles, and the collector's repeated scans of the requests a
        long run keeps alive would cost ~7% of its time.
        """
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._run_until(t_stop)
        finally:
            if collecting:
                gc.enable()

    def _run_until(self, t_stop: float) -> None:
        if self._lazy_ok():
            self._run_lazy(t_stop)
            return
        env = self.env
        heap = env._heap
        arr_t = self._arr_t
        n = len(arr_t)
        self.lazy = False
        while True:
            i = self._arr_i
            ta = arr_t[i] if i < n else INF
            if heap:
                top = heap[0]
                th = top[0]
                if th < ta or (th == ta and top[1] < PRIO_ARRIVAL):
                    if th > t_stop:
                        break
                    env.step()
                    continue
            if ta > t_stop or ta == INF:
                break
            r = self._take_arrival(i, ta)
            self._arrive(r)
        if t_stop != INF and t_stop > env.now:
            env.now = t_stop

    def _take_arrival(self, i: int, t: float) -> Request:
        """Create the workload's ``i``-th request, arriving now at ``t``."""
        self._arr_i = i + 1
        self.env.now = t
        r = Request(len(self.requests), t, self._arr_p[i], self._arr_o[i])
        if self._arr_k is not None:
            r.keys = self._arr_k[i]
        self.requests.append(r)
        return r

    def _catch_up_all(self, t: float) -> None:
        self.horizon = t
        for inst in self.instances:
            if inst.pending_end <= t:
                inst.catch_up(t)

    def _run_lazy(self, t_stop: float) -> None:
        """Aggregated batch runs: instances keep their next step end to themselves (no heap event)
        and catch up to an arrival or sample time only when it needs their state -- every
        instance for a state-reading router, only the chosen one for round robin. Each
        instance still runs exactly the steps the event loop would, in the same order."""
        env = self.env
        heap = env._heap  # holds only sampling events in this mode
        arr_t = self._arr_t
        n = len(arr_t)
        self.lazy = True
        entry = self.entry
        stateless = getattr(entry.pick, "stateless", False)
        while True:
            i = self._arr_i
            ta = arr_t[i] if i < n else INF
            ts = heap[0][0] if heap else INF
            if ts < ta:  # samples at an arrival's time come after it (PRIO_SAMPLE > PRIO_ARRIVAL)
                if ts > t_stop:
                    break
                self._catch_up_all(ts)
                env.step()
                continue
            if ta > t_stop or ta == INF:
                break
            r = self._take_arrival(i, ta)
            if stateless:
                self.horizon = ta
                self._arrive(r, catch_up=True)
            else:
                self._catch_up_all(ta)
                self._arrive(r)
            if self._to_wake and (i + 1 >= n or arr_t[i + 1] > ta):
                self._wake_arrived(None)
        self._catch_up_all(t_stop)
        self.horizon = -INF
        if t_stop != INF and t_stop > env.now:
            env.now = t_stop

    def done(self) -> bool:
        """Whether every request fed so far has completed or been rejected."""
        return (not len(self.env) and self._arr_i >= len(self._arr_t)
                and all(i.pending_end == INF for i in self.instances))

    def fits(self, prompt_tokens: int, output_tokens: int) -> bool:
        """Whether a request of this size fits an empty instance's KV cache at every stage (else it is rejected)."""
        whole = prompt_tokens + output_tokens
        if self.entry is self.last_pool:
            return self.entry.instances[0].sched.fits_ever(whole)
        return (self.entry.instances[0].sched.fits_ever(prompt_tokens)
                and self.last_pool.instances[0].sched.fits_ever(whole))

    # ---- cancellation ---------------------------------------------------------------
    def cancel(self, r: Request) -> None:
        """Cancel ``r`` (a client went away), freeing its batch slot and KV as vLLM's ``abort`` does.

        A request that has not arrived, is queued, or waits for room on a decode
        instance leaves now. One in a batch leaves at its instance's next step
        boundary: the step in flight still emits its token (the caller drops it).
        One whose KV is moving leaves when the transfer ends. Finished, rejected
        or already cancelled requests are left alone.
        """
        st = r.state
        if r.cancelled or st is DONE or st is REJECTED or st is CANCELLED:
            return
        r.cancelled = True
        now = self.env.now
        if st is NEW:  # its arrival is still to come: _arrive drops it
            return
        if st is TRANSFERRING:
            dec = self.pools["decode"]
            for i, (q, src) in enumerate(dec.pending):
                if q is r:
                    del dec.pending[i]
                    dec.change(now, -1, -1)
                    self._leave_prefill_instance(r, src, now)
                    r.state = CANCELLED
                    self.cancelled += 1
                    return
            return  # KV on the link: _transfer_done drops it
        inst = self.instances[r.instance]
        if inst.sched.cancel(r):
            inst.change(now, -1, -1)
            self.cancelled += 1
        else:
            inst.interrupt_run(now)  # a committed decode run ends with the step in flight

    def left_cancelled(self, inst: Instance, count: int) -> None:
        """``count`` cancelled requests left ``inst`` at a step boundary."""
        self.cancelled += count
        if inst.role == "decode" and self.pools["decode"].pending:
            self.drain_pending(inst)
        if self.draining and inst.index in self.draining:
            self.rebalancer.check_drained(inst)

    def _leave_prefill_instance(self, r: Request, src: Instance, now: float) -> None:
        src.sched.release(r)
        src.change(now, 0, -1)
        src.wake()
        if self.draining and src.index in self.draining:
            self.rebalancer.check_drained(src)

    # ---- request flow ---------------------------------------------------------------
    def _arrive(self, r: Request, catch_up: bool = False) -> None:
        now = self.env.now
        entry = self.entry
        if r.cancelled:  # cancelled before it arrived
            r.state = CANCELLED
            self.cancelled += 1
            return
        if not self.fits(r.prompt_tokens, r.output_tokens):
            r.state = REJECTED
            self.rejected += 1
            if self.on_finish is not None:
                self.on_finish(r, now)
            return
        inst = entry.routable[entry.pick(entry.load, r)]
        if catch_up and inst.pending_end <= now:
            inst.catch_up(now)
        inst.interrupt_run(now)
        r.instance = inst.index
        inst.sched.enqueue(r)
        inst.change(now, 1, 1)
        if not inst.busy:
            if not self._to_wake and not self.lazy:  # lazy runs wake them after the last arrival at this time
                self.env.schedule(now, PRIO_START, self._wake_arrived, None)
            if inst not in self._to_wake:
                self._to_wake.append(inst)

    def _wake_arrived(self, _: object) -> None:
        """Start the instances that received requests, after every arrival at this time."""
        waking, self._to_wake = self._to_wake, []
        for inst in waking:
            inst.wake()

    def step_result(self, inst: Instance, res: StepResult, now: float) -> None:
        """Apply what one instance's step, ended at ``now``, produced."""
        if res.first and self.on_first_token is not None:
            for r in res.first:
                self.on_first_token(r, now)
        if res.finished:
            pool = self.pools[inst.role]
            for r in res.finished:
                self.completed += 1
                if self.on_finish is not None:
                    self.on_finish(r, now)
            inst.change(now, 0, -len(res.finished))
            if pool.role == "decode" and pool.pending:
                self.drain_pending(inst)
            if self.draining and inst.index in self.draining:
                self.rebalancer.check_drained(inst)
        if res.resumed and self.on_token is not None:
            for r in res.resumed:
                self.on_token(r, now, r.generated)
        for r in res.handoff:
            self._handoff(r, inst)

    def emit_tokens(self, inst: Instance, out: SchedulerOutput, now: float) -> None:
        """Per-token callbacks for the decode members of a finished step (only when tracking tokens)."""
        cb = self.on_token
        assert cb is not None and out.members is not None
        sched = inst.sched
        for r in out.members:
            if r.state is DECODING or r.state is DONE:
                cb(r, now, sched.tokens_of(r))
