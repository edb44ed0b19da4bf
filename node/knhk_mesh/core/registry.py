"""Peer registry in columnar storage: O(1) lookup, O(k) random sampling, ~100 bytes per peer.

A `__slots__` object per peer costs ~400 bytes in CPython, so peers live in parallel arrays
(bytearray slabs and `array` columns) indexed by a dense slot number. Two open-addressing tables
(linear probing, backward-shift deletion) map an agent id and an address to a slot without holding a
Python object per peer. Removal swaps the last slot into the hole, so slots stay dense and random
sampling is `randrange(n)`. PeerInfo values are materialised on demand.
"""

from __future__ import annotations

import heapq
import ipaddress
import random
from array import array
from collections.abc import Iterator
from dataclasses import dataclass

from knhk_mesh.core.messages import AGENT_ID_BYTES, PUBLIC_KEY_BYTES, Address, AgentId, PeerRecord
from knhk_mesh.core.topology import Candidate

_IP_BYTES = 16
_FLAG_INTRODUCED = 1
_HOT_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class PeerInfo:
    agent_id: AgentId
    address: Address
    public_key: bytes
    last_seen: float
    reputation: float
    region: str
    rtt: float  # seconds; 0.0 = not measured
    introduced: bool  # the peer knows us (it sent us something, or came from static configuration)


class _SlotTable:
    """Open-addressing hash table from a 64-bit hash to slot numbers; the caller confirms matches."""

    __slots__ = ("_mask", "_table", "used")

    def __init__(self, capacity: int = 16) -> None:
        self._table = array("i", [-1]) * capacity
        self._mask = capacity - 1
        self.used = 0

    def find(self, h: int, matches: object) -> int:
        """Slot for hash h whose row satisfies `matches(slot)`, or -1."""
        table, mask = self._table, self._mask
        i = h & mask
        while True:
            slot = table[i]
            if slot < 0:
                return -1
            if matches(slot):  # type: ignore[operator]
                return slot
            i = (i + 1) & mask

    def insert(self, h: int, slot: int) -> None:
        if (self.used + 1) * 2 > len(self._table):
            raise OverflowError("table full")  # the registry grows before this happens
        table, mask = self._table, self._mask
        i = h & mask
        while table[i] >= 0:
            i = (i + 1) & mask
        table[i] = slot
        self.used += 1

    def position(self, h: int, slot: int) -> int:
        table, mask = self._table, self._mask
        i = h & mask
        while table[i] != slot:
            if table[i] < 0:
                raise KeyError(slot)
            i = (i + 1) & mask
        return i

    def replace(self, h: int, old_slot: int, new_slot: int) -> None:
        self._table[self.position(h, old_slot)] = new_slot

    def remove(self, h: int, slot: int, hash_of: object) -> None:
        """Backward-shift deletion keeps probe chains intact without tombstones."""
        table, mask = self._table, self._mask
        i = self.position(h, slot)
        j = i
        while True:
            j = (j + 1) & mask
            s = table[j]
            if s < 0:
                break
            home = hash_of(s) & mask  # type: ignore[operator]
            # move s back to i when its home is not cyclically within (i, j]
            if (j > i and (home <= i or home > j)) or (j < i and (home <= i and home > j)):
                table[i] = s
                i = j
        table[i] = -1
        self.used -= 1

    @property
    def capacity(self) -> int:
        return len(self._table)


class PeerRegistry:
    """The node's view of the mesh's membership."""

    def __init__(self, capacity: int = 16) -> None:
        self._n = 0
        self._ids = bytearray()
        self._keys = bytearray()
        self._ips = bytearray()
        self._host_ref = array("I")  # 0: address is the IP in _ips, else 1 + index into _hosts
        self._ports = array("H")
        self._last_seen = array("d")
        self._reputation = array("f")
        self._region = array("H")
        self._rtt = array("f")
        self._flags = bytearray()
        # slots whose reputation is below 1.0: usually few, so sampling tells a peer in full standing
        # from this small set without reading its row of the reputation column (a cache miss at 1M)
        self._below_full: set[int] = set()
        self._hosts: list[str] = []
        self._host_index: dict[str, int] = {}
        self._regions: list[str] = [""]
        self._region_index: dict[str, int] = {"": 0}
        cap = 16
        while cap < 2 * capacity:
            cap *= 2
        self._by_id = _SlotTable(cap)
        self._by_addr = _SlotTable(cap)
        self._hot: dict[object, int] = {}  # bounded cache of recent id/address -> slot lookups
        # members' own signed records, for those that have one (what membership gossip relays)
        self._records: dict[AgentId, PeerRecord] = {}

    def copy(self) -> PeerRegistry:
        """An independent copy (column and table copies run at C speed: cheap bulk bootstrap)."""
        out = PeerRegistry.__new__(PeerRegistry)
        out._n = self._n
        for name in ("_ids", "_keys", "_ips", "_flags"):
            setattr(out, name, bytearray(getattr(self, name)))
        for name in ("_host_ref", "_ports", "_last_seen", "_reputation", "_region", "_rtt"):
            setattr(out, name, array(getattr(self, name).typecode, getattr(self, name)))
        out._hosts, out._host_index = list(self._hosts), dict(self._host_index)
        out._regions, out._region_index = list(self._regions), dict(self._region_index)
        out._hot = {}
        out._below_full = set(self._below_full)
        out._records = dict(self._records)
        for name in ("_by_id", "_by_addr"):
            table: _SlotTable = getattr(self, name)
            clone = _SlotTable.__new__(_SlotTable)
            clone._table, clone._mask, clone.used = array("i", table._table), table._mask, table.used
            setattr(out, name, clone)
        return out

    # --- hashing helpers ----------------------------------------------------------------------------

    def _id_at(self, slot: int) -> bytes:
        o = slot * AGENT_ID_BYTES
        return bytes(self._ids[o : o + AGENT_ID_BYTES])

    @staticmethod
    def _id_hash(agent_id: bytes) -> int:
        # SipHash (per-process key): ids are meant to be random, but must not be trusted to be.
        return hash(agent_id) & 0x7FFFFFFFFFFFFFFF

    def _slot_id_hash(self, slot: int) -> int:
        return self._id_hash(self._id_at(slot))

    def _address_at(self, slot: int) -> Address:
        ref = self._host_ref[slot]
        if ref:
            host = self._hosts[ref - 1]
        else:
            o = slot * _IP_BYTES
            ip = ipaddress.IPv6Address(bytes(self._ips[o : o + _IP_BYTES]))
            host = str(ip.ipv4_mapped) if ip.ipv4_mapped is not None else str(ip)
        return (host, self._ports[slot])

    @staticmethod
    def _addr_hash(address: Address) -> int:
        return hash(address) & 0x7FFFFFFFFFFFFFFF

    def _slot_addr_hash(self, slot: int) -> int:
        return self._addr_hash(self._address_at(slot))

    def _encode_host(self, host: str) -> tuple[bytes, int]:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ref = self._host_index.get(host)
            if ref is None:
                self._hosts.append(host)
                ref = self._host_index[host] = len(self._hosts)
            return bytes(_IP_BYTES), ref
        if str(ip) != host:  # non-canonical spelling: keep it verbatim so lookups round-trip
            ref = self._host_index.get(host)
            if ref is None:
                self._hosts.append(host)
                ref = self._host_index[host] = len(self._hosts)
            return bytes(_IP_BYTES), ref
        packed = ip.packed if ip.version == 6 else ipaddress.IPv6Address(f"::ffff:{ip}").packed
        return packed, 0

    def _region_ref(self, region: str) -> int:
        ref = self._region_index.get(region)
        if ref is None:
            self._regions.append(region)
            ref = self._region_index[region] = len(self._regions) - 1
        return ref

    # --- lookup -------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._n

    def slot_of(self, agent_id: AgentId) -> int:
        slot = self._hot.get(agent_id)
        if slot is not None:
            return slot
        if len(agent_id) != AGENT_ID_BYTES:
            return -1
        slot = self._by_id.find(self._id_hash(agent_id), lambda s: self._id_at(s) == agent_id)
        if slot >= 0:
            self._remember(agent_id, slot)
        return slot

    def _remember(self, key: object, slot: int) -> None:
        if len(self._hot) >= _HOT_LIMIT:
            self._hot.clear()
        self._hot[key] = slot

    def __contains__(self, agent_id: object) -> bool:
        return isinstance(agent_id, bytes) and self.slot_of(agent_id) >= 0

    def agent_at(self, address: Address) -> AgentId | None:
        slot = self._hot.get(address)
        if slot is None:
            slot = self._by_addr.find(self._addr_hash(address), lambda s: self._address_at(s) == address)
            if slot < 0:
                return None
            self._remember(address, slot)
        return self._id_at(slot)

    def public_key(self, agent_id: AgentId) -> bytes | None:
        slot = self.slot_of(agent_id)
        if slot < 0:
            return None
        o = slot * PUBLIC_KEY_BYTES
        return bytes(self._keys[o : o + PUBLIC_KEY_BYTES])

    def get(self, agent_id: AgentId) -> PeerInfo | None:
        slot = self.slot_of(agent_id)
        return None if slot < 0 else self._info(slot)

    def _info(self, slot: int) -> PeerInfo:
        o = slot * PUBLIC_KEY_BYTES
        return PeerInfo(
            agent_id=self._id_at(slot),
            address=self._address_at(slot),
            public_key=bytes(self._keys[o : o + PUBLIC_KEY_BYTES]),
            last_seen=self._last_seen[slot],
            reputation=round(self._reputation[slot], 6),
            region=self._regions[self._region[slot]],
            rtt=self._rtt[slot],
            introduced=bool(self._flags[slot] & _FLAG_INTRODUCED),
        )

    def record(self, agent_id: AgentId) -> PeerRecord | None:
        return self._records.get(agent_id)

    def set_record(self, record: PeerRecord) -> None:
        """Keep a registered member's signed record (to relay it, and to know its keys)."""
        if record.agent in self:
            self._records[record.agent] = record

    def set_public_key(self, agent_id: AgentId, public_key: bytes) -> None:
        """A member's current key, after a rotation its previous key signed."""
        slot = self.slot_of(agent_id)
        if slot >= 0:
            o = slot * PUBLIC_KEY_BYTES
            self._keys[o : o + PUBLIC_KEY_BYTES] = public_key

    def address_of(self, agent_id: AgentId) -> Address | None:
        slot = self.slot_of(agent_id)
        return None if slot < 0 else self._address_at(slot)

    def reputation(self, agent_id: AgentId) -> float:
        """The peer's reputation; 0.0 for unknown agents."""
        slot = self.slot_of(agent_id)
        return 0.0 if slot < 0 else round(self._reputation[slot], 6)

    def introduced(self, agent_id: AgentId) -> bool:
        slot = self.slot_of(agent_id)
        return slot >= 0 and bool(self._flags[slot] & _FLAG_INTRODUCED)

    def ids(self) -> Iterator[AgentId]:
        for slot in range(self._n):
            yield self._id_at(slot)

    def standings(self) -> Iterator[tuple[AgentId, str, float, float]]:
        """(agent id, region, last seen, reputation) of every peer, straight from the columns: what the
        leader rule reads every round, without building a PeerInfo (address, key) per peer."""
        regions, seen, rep = self._regions, self._last_seen, self._reputation
        region_ref = self._region
        for slot in range(self._n):
            yield self._id_at(slot), regions[region_ref[slot]], seen[slot], round(rep[slot], 6)

    def peers(self) -> Iterator[PeerInfo]:
        for slot in range(self._n):
            yield self._info(slot)

    # --- mutation -----------------------------------------------------------------------------------

    def register(
        self,
        agent_id: AgentId,
        address: Address,
        public_key: bytes,
        *,
        region: str = "",
        now: float = 0.0,
        introduced: bool = False,
    ) -> bool:
        """Add a peer (True) or refresh a known one's address, region and last-seen time (False)."""
        if len(agent_id) != AGENT_ID_BYTES or len(public_key) != PUBLIC_KEY_BYTES:
            raise ValueError("agent id must be 8 bytes and public key 32 bytes")
        slot = self.slot_of(agent_id)
        if slot >= 0:
            if self._address_at(slot) != address:
                self._hot.clear()
                self._by_addr.remove(self._slot_addr_hash(slot), slot, self._slot_addr_hash)
                self._set_address(slot, address)
                self._by_addr.insert(self._addr_hash(address), slot)
            self._region[slot] = self._region_ref(region)
            self._last_seen[slot] = max(self._last_seen[slot], now)
            if introduced:
                self._flags[slot] |= _FLAG_INTRODUCED
            return False
        if (self._n + 1) * 2 > self._by_id.capacity:
            self._grow()
        slot = self._n
        self._ids += agent_id
        self._keys += public_key
        self._ips += bytes(_IP_BYTES)
        self._host_ref.append(0)
        self._ports.append(0)
        self._set_address(slot, address)
        self._last_seen.append(now)
        self._reputation.append(1.0)
        self._region.append(self._region_ref(region))
        self._rtt.append(0.0)
        self._flags.append(_FLAG_INTRODUCED if introduced else 0)
        self._n += 1
        self._by_id.insert(self._id_hash(agent_id), slot)
        self._by_addr.insert(self._addr_hash(address), slot)
        return True

    def _set_address(self, slot: int, address: Address) -> None:
        packed, ref = self._encode_host(address[0])
        o = slot * _IP_BYTES
        self._ips[o : o + _IP_BYTES] = packed
        self._host_ref[slot] = ref
        self._ports[slot] = address[1]

    def _grow(self) -> None:
        cap = self._by_id.capacity * 2
        self._by_id = _SlotTable(cap)
        self._by_addr = _SlotTable(cap)
        for slot in range(self._n):
            self._by_id.insert(self._slot_id_hash(slot), slot)
            self._by_addr.insert(self._slot_addr_hash(slot), slot)

    def remove(self, agent_id: AgentId) -> bool:
        slot = self.slot_of(agent_id)
        if slot < 0:
            return False
        self._records.pop(agent_id, None)
        self._hot.clear()
        below = self._below_full
        below.discard(slot)
        self._by_id.remove(self._id_hash(agent_id), slot, self._slot_id_hash)
        self._by_addr.remove(self._slot_addr_hash(slot), slot, self._slot_addr_hash)
        last = self._n - 1
        if slot != last:
            last_id_hash, last_addr_hash = self._slot_id_hash(last), self._slot_addr_hash(last)
            for slab, width in (
                (self._ids, AGENT_ID_BYTES),
                (self._keys, PUBLIC_KEY_BYTES),
                (self._ips, _IP_BYTES),
            ):
                slab[slot * width : (slot + 1) * width] = slab[last * width : (last + 1) * width]
            for icol in (self._host_ref, self._ports, self._region):
                icol[slot] = icol[last]
            for fcol in (self._last_seen, self._reputation, self._rtt):
                fcol[slot] = fcol[last]
            self._flags[slot] = self._flags[last]
            if last in below:
                below.discard(last)
                below.add(slot)
            self._by_id.replace(last_id_hash, last, slot)
            self._by_addr.replace(last_addr_hash, last, slot)
        for slab, width in (
            (self._ids, AGENT_ID_BYTES),
            (self._keys, PUBLIC_KEY_BYTES),
            (self._ips, _IP_BYTES),
        ):
            del slab[last * width :]
        for col in (self._host_ref, self._ports, self._last_seen, self._reputation, self._region, self._rtt):
            col.pop()
        self._flags.pop()
        self._n -= 1
        return True

    def touch(self, agent_id: AgentId, now: float) -> None:
        slot = self.slot_of(agent_id)
        if slot >= 0:
            if now > self._last_seen[slot]:
                self._last_seen[slot] = now
            self._flags[slot] |= _FLAG_INTRODUCED

    def mark_introduced(self, agent_id: AgentId) -> None:
        slot = self.slot_of(agent_id)
        if slot >= 0:
            self._flags[slot] |= _FLAG_INTRODUCED

    def rtt(self, agent_id: AgentId) -> float:
        """The peer's smoothed RTT in seconds; 0.0 when unmeasured or unknown."""
        slot = self.slot_of(agent_id)
        return 0.0 if slot < 0 else self._rtt[slot]

    def set_rtt(self, agent_id: AgentId, rtt: float) -> None:
        slot = self.slot_of(agent_id)
        if slot >= 0:
            old = self._rtt[slot]
            self._rtt[slot] = rtt if old == 0.0 else 0.875 * old + 0.125 * rtt  # RFC 6298 smoothing

    def update_reputation(self, agent_id: AgentId, delta: float) -> tuple[float, float]:
        """Add delta (clamped to [0, 1]); returns (previous, current). Unknown agents: (0, 0)."""
        slot = self.slot_of(agent_id)
        if slot < 0:
            return (0.0, 0.0)
        previous = round(self._reputation[slot], 6)
        current = round(min(1.0, max(0.0, previous + delta)), 6)
        rep = self._reputation
        rep[slot] = current
        if rep[slot] < 1.0:  # as stored (float32), which is what sampling compares
            self._below_full.add(slot)
        else:
            self._below_full.discard(slot)
        return previous, current

    # --- selection ----------------------------------------------------------------------------------

    def random_peers(
        self, k: int, rng: random.Random, *, exclude: AgentId | None = None, min_reputation: float = 0.0
    ) -> list[AgentId]:
        """Up to k distinct peers chosen uniformly among those eligible; O(k) when most are eligible.

        A call touches only the rows it picks (one id each; the reputation column only for the few
        peers below full standing), so its cost does not grow with the registry's size."""
        n = self._n
        if k <= 0 or n == 0:
            return []
        chosen: list[int] = []
        seen: set[int] = set()
        attempts = 0
        limit = 4 * k + 16
        rep = self._reputation
        floor = min_reputation - 1e-9
        # a peer outside this set has reputation 1.0, eligible whenever the floor is at most that
        below = self._below_full if floor <= 1.0 else None
        excluded = self.slot_of(exclude) if exclude is not None else -1
        randrange = rng.randrange
        while len(chosen) < k and attempts < limit and len(seen) < n:
            attempts += 1
            slot = randrange(n)
            if slot in seen:
                continue
            seen.add(slot)
            if slot != excluded and ((below is not None and slot not in below) or rep[slot] >= floor):
                chosen.append(slot)
        if len(chosen) < k and len(seen) < n:
            # Many ineligible peers (or a tiny registry): fall back to sampling the eligible set.
            rest = [s for s in range(n) if s not in seen and s != excluded and rep[s] >= floor]
            chosen.extend(rng.sample(rest, min(len(rest), k - len(chosen))))
        ids, width = self._ids, AGENT_ID_BYTES
        return [bytes(ids[s * width : (s + 1) * width]) for s in chosen]

    def nearest_peers(
        self, k: int, *, exclude: AgentId | None = None, min_reputation: float = 0.0
    ) -> list[AgentId]:
        """The k peers with the lowest measured RTT (unmeasured peers last)."""
        excluded = self.slot_of(exclude) if exclude is not None else -1
        rtt, rep = self._rtt, self._reputation
        best = heapq.nsmallest(
            k,
            (s for s in range(self._n) if s != excluded and rep[s] >= min_reputation - 1e-9),
            key=lambda s: (rtt[s] if rtt[s] > 0.0 else float("inf"), s),
        )
        return [self._id_at(s) for s in best]

    def candidates(self, *, exclude: AgentId | None = None, min_reputation: float = 0.0) -> list[Candidate]:
        """Every eligible peer with its RTT and region: what a topology strategy chooses from (O(n))."""
        excluded = self.slot_of(exclude) if exclude is not None else -1
        rtt, rep, region, names = self._rtt, self._reputation, self._region, self._regions
        return [
            Candidate(self._id_at(s), rtt[s], names[region[s]])
            for s in range(self._n)
            if s != excluded and rep[s] >= min_reputation - 1e-9
        ]

    def reachability(self, since: float, min_reputation: float) -> tuple[int, int]:
        """(peers in good standing, of which heard from at or after `since`): the partition detector's
        input, one pass over two arrays."""
        rep, seen = self._reputation, self._last_seen
        floor = min_reputation - 1e-9
        members = heard = 0
        for s in range(self._n):
            if rep[s] >= floor:
                members += 1
                if seen[s] >= since:
                    heard += 1
        return members, heard

    def silent_since(
        self, before: float, start: int, count: int, min_reputation: float
    ) -> tuple[list[AgentId], int]:
        """Peers in good standing among `count` slots from `start` (wrapping) not heard from since
        `before`, and the slot to continue from: a cursor that visits every peer in turn at a bounded
        cost per call."""
        n = self._n
        if n == 0:
            return [], 0
        seen, rep = self._last_seen, self._reputation
        floor = min_reputation - 1e-9
        out: list[AgentId] = []
        slot = start % n
        for _ in range(min(count, n)):
            if seen[slot] < before and rep[slot] >= floor:
                out.append(self._id_at(slot))
            slot = (slot + 1) % n
        return out, slot

    def prune_stale(self, now: float, timeout: float) -> list[AgentId]:
        """Remove peers not seen for `timeout` seconds; returns their ids."""
        return [agent for agent, _ in self.prune_stale_at(now, timeout)]

    def prune_stale_at(self, now: float, timeout: float) -> list[tuple[AgentId, Address]]:
        """Remove peers not seen for `timeout` seconds; returns their ids and last addresses (so the
        engine can knock there again if it finds itself alone)."""
        seen = self._last_seen
        stale = [(self._id_at(s), self._address_at(s)) for s in range(self._n) if now - seen[s] > timeout]
        for agent_id, _ in stale:
            self.remove(agent_id)
        return stale


class RegistryPool:
    """The registry as a topology `CandidatePool`: eligibility and uniform samples per call, O(k)."""

    def __init__(self, registry: PeerRegistry, *, exclude: AgentId | None, min_reputation: float) -> None:
        self._registry = registry
        self._exclude = exclude
        self._floor = min_reputation - 1e-9
        self._min_reputation = min_reputation

    def eligible(self, agent: AgentId) -> bool:
        reg = self._registry
        slot = reg.slot_of(agent)
        return slot >= 0 and agent != self._exclude and reg._reputation[slot] >= self._floor

    def sample(self, k: int, rng: random.Random) -> list[AgentId]:
        return self._registry.random_peers(k, rng, exclude=self._exclude, min_reputation=self._min_reputation)

    def candidates(self) -> list[Candidate]:
        return self._registry.candidates(exclude=self._exclude, min_reputation=self._min_reputation)

    def everyone(self) -> list[Candidate]:
        return self._registry.candidates(exclude=self._exclude)
