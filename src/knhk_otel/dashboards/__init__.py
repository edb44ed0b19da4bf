"""Generated Grafana dashboards after generation: lint, schema validation and rendering to PNG.

Nothing here is imported by the core toolchain; promql-parser, jsonschema and matplotlib load only
when a `knhk-otel dashboards` subcommand or a test asks for them.
"""
