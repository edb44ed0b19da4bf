"""Strict mode of the project's generated helpers (`knhk_otel.semconv.strict`), under its old name.

The generated package carries its own strict-mode module so that it needs nothing but
`opentelemetry-api`; the toolchain (pytest plugin, self-test, mesh CLI) switches that module
through this re-export. `enabled` is not re-exported: read `is_strict()`, which sees the live flag.
"""

from __future__ import annotations

from knhk_otel.semconv.strict import AttributeSpec, SchemaUsageError, check, is_strict, set_strict

__all__ = ["AttributeSpec", "SchemaUsageError", "check", "is_strict", "set_strict"]
