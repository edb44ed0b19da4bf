"""Typed protocol errors: every decoding or validation failure says what went wrong."""

from __future__ import annotations


class ProtocolError(Exception):
    """Bytes that are not a valid mesh message; `reason` is a short stable id, `detail` a human hint."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class PartitionedError(Exception):
    """A local write refused because this agent is cut off from its quorum: it is read-only until the
    partition heals (reads keep working; nothing accepted before is dropped)."""

    def __init__(self, node: str, reachable: int, members: int, quorum: int) -> None:
        super().__init__(
            f"agent {node[:16]} is partitioned and read-only: it reaches {reachable + 1} of {members} "
            f"members (itself included), the quorum is {quorum}; retry the write after the partition heals"
        )
        self.reachable = reachable
        self.members = members
        self.quorum = quorum
