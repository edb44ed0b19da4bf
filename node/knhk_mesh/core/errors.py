"""Typed protocol errors: every decoding or validation failure says what went wrong."""

from __future__ import annotations


class ProtocolError(Exception):
    """Bytes that are not a valid mesh message; `reason` is a short stable id, `detail` a human hint."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
