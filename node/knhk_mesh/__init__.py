"""knhk_mesh: the KNHK gossip mesh, instrumented only through knhk_otel's generated helpers."""

__version__ = "0.1.0"
