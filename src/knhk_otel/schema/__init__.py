"""Stage 1 of the pipeline: load registry YAML (v1 and v2 syntax) into the resolved model."""
