"""Sans-I/O protocol core of the mesh: wire messages, CRDT state, events and the engine."""
