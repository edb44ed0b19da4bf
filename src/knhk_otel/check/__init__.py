"""Stage 2 of the pipeline: check a registry (syntax, semantics, policies, baseline compatibility)."""
