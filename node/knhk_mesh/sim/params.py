"""What a simulation run is asked to do, checked once at the edge so the array code can trust it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum

MAX_AGENTS = 10_000_000  # peak RSS grows ~linearly: 0.38 GiB at 1M (bench), so a few GiB here
LEADER_FANOUT = 3  # leaders gossip across regions with this fanout (issue 12, the seed's multi-region mesh)
DEFAULT_REGIONS = 3  # the seed's multi-region mesh: US-East, EU-West, APAC
DEFAULT_CLUSTER_SIZE = 10_000  # the seed's hierarchical mesh: edge clusters of 10k agents
DEFAULT_COORDINATORS = 2  # the seed's global coordinators GC1, GC2
HOT_ROUNDS = 2  # rounds a newly learnt entry rides on pushes: the engine's MeshConfig.hot_rounds
LATENCY = (0.001, 0.005)  # one-way delay, seconds: the memory transport's default (Faults.latency)


class Topology(StrEnum):
    SINGLE = "single"
    MULTI = "multi"
    HIERARCHICAL = "hierarchical"


@dataclass(frozen=True)
class SimParams:
    """One simulated write spreading through `agents` agents; every field is validated on creation."""

    agents: int
    topology: Topology = Topology.SINGLE
    fanout: int = 10
    byzantine: int = 0
    loss: float = 0.0
    seed: int = 1
    regions: int = DEFAULT_REGIONS
    cluster_size: int = DEFAULT_CLUSTER_SIZE
    coordinators: int = DEFAULT_COORDINATORS
    max_rounds: int = 100

    def __post_init__(self) -> None:
        if not 2 <= self.agents <= MAX_AGENTS:
            raise ValueError(f"--agents must be between 2 and {MAX_AGENTS:,}, got {self.agents}")
        if self.byzantine < 0:
            raise ValueError(f"--byzantine must not be negative, got {self.byzantine}")
        if self.byzantine * 3 >= self.agents:
            raise ValueError(
                f"--byzantine {self.byzantine} with --agents {self.agents}: Byzantine agents must be "
                "fewer than n/3"
            )
        if not 0.0 <= self.loss < 1.0:
            raise ValueError(f"--loss must be a probability in [0, 1), got {self.loss}")
        if self.topology is Topology.MULTI and not 1 <= self.regions <= self.agents // 2:
            raise ValueError(
                f"--regions must be between 1 and agents/2 ({self.agents // 2}), got {self.regions}"
            )
        if self.cluster_size < 2:
            raise ValueError(f"--cluster-size must be at least 2, got {self.cluster_size}")
        if self.coordinators < 1:
            raise ValueError(f"--coordinators must be at least 1, got {self.coordinators}")
        if self.max_rounds < 1:
            raise ValueError(f"--max-rounds must be at least 1, got {self.max_rounds}")
        if self.seed < 0:
            raise ValueError(f"--seed must not be negative, got {self.seed}")
        if self.fanout < 1:
            raise ValueError(f"--fanout must be at least 1, got {self.fanout}")
        if self.fanout > self.agents - 1:
            raise ValueError(
                f"--fanout {self.fanout} exceeds the {self.agents - 1} peers an agent has among "
                f"{self.agents} agents"
            )

    def as_dict(self) -> dict[str, object]:
        """The parameters as JSON-ready values, only those the topology uses."""
        out: dict[str, object] = asdict(self)
        out["topology"] = self.topology.value
        if self.topology is not Topology.MULTI:
            del out["regions"]
        if self.topology is not Topology.HIERARCHICAL:
            del out["cluster_size"], out["coordinators"]
        return out
