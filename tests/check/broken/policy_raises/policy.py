"""A policy with a bug: it raises instead of returning findings."""


def policy_buggy(registry):
    return [g.metric_name.upper() for g in registry.spans()]
