"""Fixtures for the schema loader/resolver tests: small registries written into tmp folders."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

WriteRegistry = Callable[..., Path]


@pytest.fixture
def write_registry(tmp_path: Path) -> WriteRegistry:
    """`write_registry("name", {"file.yaml": "yaml text", ...})` → the registry folder."""

    def write(name: str, files: dict[str, str]) -> Path:
        root = tmp_path / name
        for rel, text in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        root.mkdir(parents=True, exist_ok=True)
        return root

    return write


@pytest.fixture
def base_attributes() -> str:
    """A v1 file defining a few attributes the tests refer to."""
    return _BASE_ATTRIBUTES


_BASE_ATTRIBUTES = """
groups:
  - id: registry.knhk.mesh.peer
    type: attribute_group
    brief: Peer attributes.
    attributes:
      - id: knhk.mesh.peer.id
        type: string
        stability: development
        brief: Identifier of a peer.
        note: The peer's public key fingerprint.
        examples: abc123
      - id: knhk.mesh.peer.role
        type:
          members:
            - id: seed
              value: seed
              brief: A seed node.
              stability: development
            - id: member
              value: member
              stability: development
        stability: development
        brief: Role of a peer.
      - id: knhk.mesh.peer.count
        type: int
        stability: development
        brief: Number of peers.
        requirement_level: required
"""
