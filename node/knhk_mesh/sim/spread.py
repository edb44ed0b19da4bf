"""One write spreading through the mesh, round by round, with the engine's push-pull semantics on arrays.

A round here is what `MeshEngine` does in lock-step (every agent's round timer fires at once, as in
`bench_mesh` and `knhk-mesh up`), message by message:

- round 1 is the write's round: the writer applies it and pushes it at once to k peers sampled
  uniformly from its group (the engine's eager push), plus, in multi-region and hierarchical meshes,
  to its group's leader (the upward summary); nothing else moves in that round;
- in every later round every honest agent pushes its digest to k distinct peers of its group, sampled
  uniformly, excluding itself. An entry learnt in the last `HOT_ROUNDS` rounds rides on the push
  itself (the engine's rumour: `Push.entries`), so a push from an agent that held the write *hot* when
  the round began informs its target on arrival (one one-way delay). A push from an agent holding it
  *cold* only shows a different root: the target pulls from that peer in the next round (request and
  reply, two delays after that round begins). A push from an agent that lacks it, landing on a peer
  that holds it hot *when the push arrives* (including one informed earlier in this round), is
  answered at once with the entry (two delays, the engine's push-back); a cold holder and a peer that
  lacks it too stay silent. So an agent informed early in a round passes the write on, within the
  same round, to every later push that reaches it; the arrays follow exactly that by time;
- leaders (multi-region) also push to 3 other leaders; aggregators (hierarchical) push to every
  coordinator and coordinators to each other (up and down in one exchange); these pushes start with
  the round like all others and follow the same rules;
- every one-way message is lost with probability `loss`, and delays are uniform in `LATENCY`;
- Byzantine agents withhold: they are sampled like anyone (they keep their reputation, since
  withholding is not detectable), but inform nobody, and are not counted in coverage.

Membership is implicit (see `layout`), so a run costs O(n·k) memory instead of O(n²).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from knhk_mesh.sim.layout import Layout, build_layout
from knhk_mesh.sim.params import HOT_ROUNDS, LATENCY, LEADER_FANOUT, SimParams

FloatArray = NDArray[np.float32]
BoolArray = NDArray[np.bool_]
Index = NDArray[np.int32]
_NEVER = np.float32(np.inf)
_COLD = np.int32(-(2**30))  # `learnt` of an agent that got the write by a pull: never hot


@dataclass
class SimResult:
    params: SimParams
    honest: int
    informed: list[int] = field(default_factory=list)  # honest agents holding the write after each round
    seconds: float = 0.0

    @property
    def coverage(self) -> list[float]:
        return [i / self.honest for i in self.informed]

    @property
    def rounds(self) -> int | None:
        """Rounds until every honest agent holds the write (None: not within max_rounds)."""
        for r, informed in enumerate(self.informed, start=1):
            if informed == self.honest:
                return r
        return None

    def as_dict(self) -> dict[str, object]:
        return {
            "parameters": self.params.as_dict(),
            "rounds": self.rounds,
            "coverage": self.coverage,
            "informed": self.informed,
            "honest": self.honest,
            "seconds": round(self.seconds, 3),
        }


def _distinct(rng: np.random.Generator, rows: int, choices: int, k: int) -> Index:
    """`rows` rows of min(k, choices) distinct values in [0, choices), each row uniform."""
    kk = min(k, choices)
    if kk == choices:
        return np.broadcast_to(np.arange(choices, dtype=np.int32), (rows, choices)).copy()
    if choices <= 4 * kk:
        keys = rng.random((rows, choices), dtype=np.float32)
        return np.argpartition(keys, kk - 1, axis=1)[:, :kk].astype(np.int32)
    cols = rng.integers(0, choices, size=(kk, rows), dtype=np.int32)  # column-major: contiguous compares
    todo = np.arange(rows)
    while len(todo):
        block = cols[:, todo] if len(todo) < rows else cols
        dup = np.zeros(len(todo), dtype=np.bool_)
        for i in range(1, kk):
            for j in range(i):
                dup |= block[i] == block[j]
        todo = todo[dup]
        if len(todo):
            cols[:, todo] = rng.integers(0, choices, size=(kk, len(todo)), dtype=np.int32)
    return np.ascontiguousarray(cols.T)


def sample_peers(rng: np.random.Generator, me: Index, start: Index, size: Index, k: int) -> Index:
    """For each agent `me[i]` of group [start[i], start[i] + size[i]): k distinct others (-1 pads)."""
    sizes = np.unique(size)
    if len(sizes) == 1 and sizes[0] - 1 >= k:  # the common case: one group size, no padding
        picks = _distinct(rng, len(me), int(sizes[0]) - 1, k)
        picks += picks >= (me - start)[:, None]  # skip oneself
        picks += start[:, None]
        return picks
    out = np.full((len(me), k), -1, dtype=np.int32)
    for m in sizes:
        rows = np.nonzero(size == m)[0]
        picks = _distinct(rng, len(rows), int(m) - 1, k)
        picks += picks >= (me[rows] - start[rows])[:, None]
        out[rows, : picks.shape[1]] = start[rows, None] + picks
    return out


class Spread:
    """The state of one run: which agents hold the write, and when (within a round) each got it."""

    def __init__(self, params: SimParams, layout: Layout | None = None) -> None:
        self.params = params
        self.layout = layout or build_layout(params)
        self.rng = np.random.default_rng(params.seed)
        n = params.agents
        lay = self.layout
        self.me = np.arange(n, dtype=np.int32)
        self.agent_start = np.repeat(lay.starts, lay.sizes)
        self.agent_size = np.repeat(lay.sizes, lay.sizes)
        self.pushers = np.repeat(self.me, params.fanout)
        special = np.zeros(n, dtype=np.bool_)
        special[lay.leaders] = True
        ordinary = np.nonzero(~special)[0]
        picks = self.rng.choice(len(ordinary), size=params.byzantine + 1, replace=False)
        self.writer = int(ordinary[picks[0]])
        self.byzantine = np.zeros(n, dtype=np.bool_)
        self.byzantine[ordinary[picks[1:]]] = True
        self.leader_pos = np.full(n, -1, dtype=np.int32)  # a leader's index in layout.leaders
        self.leader_pos[lay.leaders] = np.arange(len(lay.leaders), dtype=np.int32)
        self.honest = n - params.byzantine
        self.informed = np.zeros(n, dtype=np.bool_)
        self.learnt = np.full(n, np.iinfo(np.int32).max, dtype=np.int32)  # the round each got the write
        self.pull_next = np.zeros(n, dtype=np.bool_)  # saw a cold holder's root: pulls next round
        self.round = 0

    # --- randomness ---------------------------------------------------------------------------------

    def _delays(self, count: int) -> FloatArray:
        lo, hi = LATENCY
        out = self.rng.random(count, dtype=np.float32)
        out *= hi - lo
        out += lo
        return out

    def _delivered(self, count: int, messages: int) -> BoolArray:
        """Whether all `messages` one-way messages of each of `count` exchanges arrive."""
        if self.params.loss == 0.0:
            return np.ones(count, dtype=np.bool_)
        keep = 1.0 - self.params.loss
        return self.rng.random(count, dtype=np.float32) < np.float32(keep**messages)

    # --- one round -----------------------------------------------------------------------------------

    def _pushes(self) -> tuple[Index, Index]:
        """Every push of a gossip round as (pusher, target); pushes to or from Byzantine agents dropped."""
        k = self.params.fanout
        targets = sample_peers(self.rng, self.me, self.agent_start, self.agent_size, k)
        src, dst = self.pushers, targets.ravel()
        lay = self.layout
        extra: list[tuple[Index, Index]] = []
        if len(lay.coordinators):  # hierarchical: every aggregator with every coordinator
            coords, aggs = lay.coordinators, lay.leaders
            extra.append((np.repeat(aggs, len(coords)), np.tile(coords, len(aggs))))
        elif len(lay.leaders):  # multi-region: leaders with LEADER_FANOUT other leaders
            leaders = lay.leaders
            g = len(leaders)
            index = np.arange(g, dtype=np.int32)
            picks = sample_peers(
                self.rng, index, np.zeros(g, dtype=np.int32), np.full(g, g, dtype=np.int32), LEADER_FANOUT
            )
            extra.append((leaders[np.repeat(index, picks.shape[1])], leaders[picks.ravel()]))
        if extra:
            src = np.concatenate([src, *(s for s, _ in extra)])
            dst = np.concatenate([dst, *(d for _, d in extra)])
            keep = src != dst
            if (dst < 0).any():
                keep &= dst >= 0
            src, dst = src[keep], dst[keep]
        elif (dst < 0).any():
            src, dst = src[dst >= 0], dst[dst >= 0]
        if self.params.byzantine:
            keep = ~self.byzantine[src] & ~self.byzantine[dst]
            src, dst = src[keep], dst[keep]
        return src, dst

    def _forward_targets(self, fwd: Index) -> tuple[Index, Index]:
        """The pushes of agents passing the write on at once, as (forwarder, target): k distinct peers of
        the own group, plus, for leaders, what their round pushes reach beyond it (other leaders, or the
        coordinators); targets that are Byzantine are dropped (they inform nobody anyway)."""
        k = self.params.fanout
        picks = sample_peers(self.rng, fwd, self.agent_start[fwd], self.agent_size[fwd], k)
        src, dst = np.repeat(fwd, picks.shape[1]), picks.ravel()
        lay = self.layout
        leading = fwd[self.leader_pos[fwd] >= 0] if len(lay.leaders) else fwd[:0]
        if len(leading):
            if len(lay.coordinators):  # an aggregator passes it up to every coordinator
                coords = lay.coordinators
                ls, ld = np.repeat(leading, len(coords)), np.tile(coords, len(leading))
            else:  # a regional leader passes it to LEADER_FANOUT other leaders
                g = len(lay.leaders)
                pos = self.leader_pos[leading]
                picks = sample_peers(
                    self.rng,
                    pos,
                    np.zeros(len(pos), dtype=np.int32),
                    np.full(len(pos), g, np.int32),
                    LEADER_FANOUT,
                )
                ls, ld = np.repeat(leading, picks.shape[1]), lay.leaders[picks.ravel()]
            src, dst = np.concatenate([src, ls]), np.concatenate([dst, ld])
        keep = (dst >= 0) & (src != dst)
        keep[keep] &= ~self.byzantine[dst[keep]]
        return src[keep], dst[keep]

    def _write_round(self) -> tuple[FloatArray, BoolArray]:
        """The writer's eager push (to its leader too, in a grouped mesh), then the forwarding cascade."""
        k = self.params.fanout
        w = self.writer
        me = np.array([w], dtype=np.int32)
        targets = sample_peers(self.rng, me, self.agent_start[me], self.agent_size[me], k)[0]
        targets = targets[targets >= 0]
        group = self.layout.group_of(me)[0]
        leader = int(self.layout.starts[group])
        if len(self.layout.leaders) and leader != w and leader not in targets:
            targets = np.append(targets, np.int32(leader))  # the upward summary: the leader hears at once
        n = self.params.agents
        rumour = np.full(n, _NEVER, dtype=np.float32)
        ok = self._delivered(len(targets), 1) & ~self.byzantine[targets]
        rumour[targets[ok]] = self._delays(int(ok.sum()))
        had = np.zeros(n, dtype=np.bool_)
        had[w] = True
        none = np.empty(0, dtype=np.int32)
        return self._cascade(had, had, rumour, np.full(n, _NEVER, dtype=np.float32), none, none)

    def _gossip_round(self) -> tuple[FloatArray, BoolArray]:
        had = self.informed
        hot = had & (self.learnt >= self.round - HOT_ROUNDS)  # learnt by rumour in the last HOT_ROUNDS rounds
        n = self.params.agents
        # last round's cold roots: a pull request and its reply, from the round's start
        pulled = np.full(n, _NEVER, dtype=np.float32)
        pulls = np.flatnonzero(self.pull_next & ~had)
        self.pull_next[:] = False
        ok = self._delivered(len(pulls), 2)
        np.minimum.at(pulled, pulls[ok], (self._delays(len(pulls)) + self._delays(len(pulls)))[ok])
        src, dst = self._pushes()
        # a holder's push to an agent lacking the write: the entry rides on it (hot), or the root
        # differs and the target pulls next round (cold)
        give = had[src] & ~had[dst]
        hot_give = give & hot[src]
        gd = dst[hot_give]
        ok = self._delivered(len(gd), 1)
        rumour = np.full(n, _NEVER, dtype=np.float32)
        np.minimum.at(rumour, gd[ok], self._delays(len(gd))[ok])
        cold = dst[give & ~hot[src]]
        self.pull_next[cold[self._delivered(len(cold), 1)]] = True
        # a push by an agent lacking it: answered with the entry if the target holds it hot on arrival
        ask = ~had[src]
        asrc, adst = src[ask], dst[ask]
        ok = self._delivered(len(asrc), 2)
        if not ok.all():
            asrc, adst = asrc[ok], adst[ok]
        return self._cascade(had, hot, rumour, pulled, asrc, adst)

    def _cascade(
        self, had: BoolArray, hot: BoolArray, rumour: FloatArray, pulled: FloatArray, asrc: Index, adst: Index
    ) -> tuple[FloatArray, BoolArray]:
        """Follow the round by arrival time: when each agent gets the write, and whether by rumour.

        `rumour` holds the arrivals known at the round's start (entries riding on pushes), `pulled` the
        replies of last round's pulls; (`asrc`, `adst`) are the pushes of agents that lack the write.
        An agent that gets the write by rumour before any pull reply passes it on at once to its
        targets (the engine's forwarding on receipt, once per agent) and answers every push of a lacker
        that lands on it afterwards (push-back); one that holds it hot from the round's start answers
        such pushes too. Every step takes at least one minimal delay, so agents are settled in slices
        of that width, earliest first: an agent's time is final once its slice comes up.
        """
        n = self.params.agents
        step = np.float32(LATENCY[0])
        arrive = self._delays(len(asrc))
        answered = np.zeros(len(asrc), dtype=np.bool_)
        order = np.argsort(adst, kind="stable")
        counts = np.bincount(adst, minlength=n)
        firsts = np.zeros(n, dtype=np.int64)
        np.cumsum(counts[:-1], out=firsts[1:])

        def landing_on(agents: Index) -> NDArray[np.int64]:
            """Indices of the lackers' pushes that land on `agents`."""
            lens = counts[agents]
            total = int(lens.sum())
            if not total:
                return np.empty(0, dtype=np.int64)
            ends = np.cumsum(lens)
            base = np.repeat(firsts[agents] - (ends - lens), lens)
            return order[base + np.arange(total)]

        def answer(agents: Index, since: FloatArray) -> Index:
            """Lackers' pushes landing on `agents` after `since` are answered with the entry."""
            p = landing_on(agents)
            if not len(p):
                return np.empty(0, dtype=np.int32)
            p = p[~answered[p] & (arrive[p] > since[np.searchsorted(agents, adst[p])])]
            answered[p] = True
            winners = asrc[p]
            old = rumour[winners]
            np.minimum.at(rumour, winners, arrive[p] + self._delays(len(p)))
            return winners[rumour[winners] < old]

        holders = np.flatnonzero(had & hot).astype(np.int32)  # sorted, as `answer` needs
        answer(holders, np.zeros(len(holders), dtype=np.float32))
        done = had.copy()
        queued = np.zeros(n, dtype=np.bool_)
        slot = np.empty(n, dtype=np.int32)  # scratch for removing duplicates without sorting
        active = np.flatnonzero((rumour < _NEVER) & ~done).astype(np.int32)
        queued[active] = True
        for _ in range(n + 1):  # bounded: every pass settles at least one agent for good
            if not len(active):
                break
            times = rumour[active]
            first = times < times.min() + step
            batch, active = np.sort(active[first]), active[~first]
            done[batch] = True
            fwd = batch[rumour[batch] < pulled[batch]]  # by rumour first: it passes the write on
            improved = [answer(fwd, rumour[fwd])]
            if len(fwd):
                src, dst = self._forward_targets(fwd)
                ok = self._delivered(len(dst), 1)
                src, dst = src[ok], dst[ok]
                old = rumour[dst]
                np.minimum.at(rumour, dst, rumour[src] + self._delays(len(dst)))
                improved.append(dst[rumour[dst] < old])
            new = np.concatenate(improved)
            new = new[~done[new] & ~queued[new]]
            slot[new] = np.arange(len(new), dtype=np.int32)  # the last of duplicates wins its slot
            new = new[slot[new] == np.arange(len(new), dtype=np.int32)]
            queued[new] = True
            active = np.concatenate([active, new.astype(np.int32)])
        when = np.minimum(rumour, pulled)
        when[had] = 0.0
        return when, rumour < pulled

    def step(self) -> int:
        """Run one round; returns the honest agents holding the write after it."""
        self.round += 1
        when, by_rumour = self._write_round() if self.round == 1 else self._gossip_round()
        informed = when < _NEVER
        informed &= ~self.byzantine
        new = informed & ~self.informed
        # hot for the next HOT_ROUNDS rounds only if learnt by rumour: an entry a pull brought is not
        # pushed on (the engine's repair is no rumour)
        self.learnt[new & by_rumour] = self.round
        self.learnt[new & ~by_rumour] = _COLD
        self.informed = informed
        return int(self.informed.sum())


def simulate(params: SimParams, on_round: Callable[[int, int, int], None] | None = None) -> SimResult:
    """Run until every honest agent holds the write or `max_rounds` pass; `on_round(r, informed, honest)`."""
    started = time.perf_counter()
    spread = Spread(params)
    result = SimResult(params, spread.honest)
    while spread.round < params.max_rounds:
        informed = spread.step()
        result.informed.append(informed)
        if on_round is not None:
            on_round(spread.round, informed, spread.honest)
        if informed == spread.honest:
            break
    result.seconds = time.perf_counter() - started
    return result
