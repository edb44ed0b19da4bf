"""Project rule: every span must say who it talks to (a peer attribute)."""

from knhk_otel.schema.diagnostics import Diagnostic


def spans_need_a_peer_count(registry):
    for span in registry.spans():
        if span.attribute("knhk.mesh.peer.count") is None:
            yield Diagnostic("span_without_peer_count", f"span {span.id} has no peer count", span.source)


POLICIES = [spans_need_a_peer_count]
