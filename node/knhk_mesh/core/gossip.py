"""Gossip coordinator pieces: what fits a frame, when a node is converged, which proofs to spread."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from knhk_mesh.core.messages import AgentId, Entry
from knhk_mesh.core.wire import FRAME_OVERHEAD, entry_wire_size


def fit_entries(entries: Iterable[Entry], limit: int, *, reserved: int = 0) -> tuple[Entry, ...]:
    """The longest prefix of `entries` that fits one frame of `limit` bytes beside `reserved` bytes."""
    budget = limit - FRAME_OVERHEAD - reserved
    out: list[Entry] = []
    for e in entries:
        budget -= entry_wire_size(e)
        if budget < 0:
            break
        out.append(e)
    return tuple(out)


@dataclass
class ConvergenceTracker:
    """Digest agreement with the peers heard from, over consecutive rounds.

    A node is converged once every digest it heard in `required` consecutive rounds equalled its own.
    Rounds in which it heard nothing neither count nor break the streak.
    """

    required: int
    streak: int = 0
    converged: bool = True
    change_round: int = 0
    change_time: float = 0.0
    streak_start: int = 0
    _heard: list[bool] = field(default_factory=list)

    def state_changed(self, round_no: int, now: float) -> None:
        if self.converged:
            self.converged = False
            self.change_round = round_no
            self.change_time = now
        self.streak = 0

    def heard(self, agrees: bool) -> None:
        self._heard.append(agrees)

    def end_round(self, round_no: int) -> bool:
        """Close round `round_no`; True when this closes a convergence episode."""
        heard, self._heard = self._heard, []
        if not heard:
            return False
        if all(heard):
            if self.streak == 0:
                self.streak_start = round_no
            self.streak += 1
        else:
            self.streak = 0
        if not self.converged and self.streak >= self.required:
            self.converged = True
            return True
        return False

    @property
    def rounds(self) -> int:
        """Rounds from the state change to the first round of the agreeing streak (at least 1)."""
        return max(1, self.streak_start - self.change_round + 1)


@dataclass
class EvidenceBook:
    """Equivocation proofs kept by (agent, version), each gossiped for a few rounds after it is learnt."""

    rounds_to_gossip: int
    proofs: dict[tuple[AgentId, int], tuple[Entry, Entry]] = field(default_factory=dict)
    _fresh: dict[tuple[AgentId, int], int] = field(default_factory=dict)

    def add(self, a: Entry, b: Entry) -> bool:
        key = (a.agent, a.version)
        if key in self.proofs:
            return False
        first, second = sorted((a, b), key=lambda e: e.fingerprint)
        self.proofs[key] = (first, second)
        self._fresh[key] = self.rounds_to_gossip
        return True

    def to_gossip(self) -> list[tuple[Entry, Entry]]:
        """Proofs to send this round (each counted down once per call)."""
        out = []
        for key in list(self._fresh):
            out.append(self.proofs[key])
            self._fresh[key] -= 1
            if self._fresh[key] <= 0:
                del self._fresh[key]
        return out
