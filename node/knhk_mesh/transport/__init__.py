"""Transports: shells that move the engine's bytes (in-memory now; QUIC drives the same engine later)."""
