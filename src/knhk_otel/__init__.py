"""knhk-otel: a Weaver-style schema toolchain and the runtime that keeps the mesh's telemetry honest."""

__version__ = "0.1.0"
