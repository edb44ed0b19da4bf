"""`python -m knhk_mesh.drill`: a short QUIC run whose telemetry a CI gate can judge.

Three node processes on 127.0.0.1 export over OTLP as the standard `OTEL_*` variables say; writes go
through their send queues; then one node's certificate is revoked, so the others refuse it at the
handshake and take it out of their membership. The QUIC-only signals (send-queue size, refused
handshakes) then come from real emitters, and so do `knhk.mesh.peer.left` (the revoked member leaving)
and `knhk.mesh.schema.findings` (the nodes validate in `count` mode, as deployed).
Exit 0 when every step happened, 1 (one line saying which) otherwise; every process is stopped.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import urllib.error
from pathlib import Path

from knhk_mesh import pki
from knhk_mesh.localcluster import ClusterError, ClusterSpec, LocalCluster, wait_until


def drill(workdir: Path, nodes: int, timeout: float) -> str | None:
    """Run the drill in `workdir`; None when it all happened, else what did not."""
    # validating in `count` mode, as nodes are deployed: the findings counter is exported too
    spec = ClusterSpec(nodes=nodes, fanout=nodes - 1, round_interval=0.2, export=True, validation="count")
    cluster = LocalCluster(workdir, spec)
    try:
        cluster.prepare()
        cluster.start(timeout=timeout)
        if not cluster.wait_for_membership(timeout):
            return f"membership did not spread to all {nodes} nodes in {timeout:g} s"
        for node in cluster.nodes:
            cluster.put(node, f"drill/{node.name}", "queued, sent, merged")
        if not wait_until(lambda: cluster.converged(min_entries=nodes), timeout):
            return f"the {nodes} nodes did not converge in {timeout:g} s"
        # the graceful stop at the end flushes every node's telemetry (metrics included)
        revoked, others = cluster.nodes[-1], cluster.nodes[:-1]
        pki.revoke(cluster.pki_dir, cluster.pki_dir / f"{revoked.name}.pem")  # reloaded within 1 s

        def refused() -> bool:
            st = cluster.statuses(others)
            return len(st) == len(others) and all(
                s["handshake_refusals"] and s["peers_left"] for s in st.values()
            )

        if not wait_until(refused, timeout):
            return (
                f"{revoked.name}'s revoked certificate was not refused, and it was not taken out of "
                f"membership, by all others in {timeout:g} s"
            )
        return None
    except (ClusterError, OSError, urllib.error.URLError) as exc:
        return str(exc)
    finally:
        cluster.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m knhk_mesh.drill", description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3, help="node processes (at least 3; default 3)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds any one step may take")
    args = parser.parse_args(argv)
    if args.nodes < 3 or args.timeout <= 0:
        print("knhk-mesh drill: error: --nodes must be at least 3 and --timeout positive", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="knhk-mesh-drill.") as tmp:
        failed = drill(Path(tmp), args.nodes, args.timeout)
    if failed is not None:
        print(f"knhk-mesh drill: failed: {failed}", file=sys.stderr)
        return 1
    done = "one revoked node was refused and left their membership"
    print(f"knhk-mesh drill: {args.nodes} QUIC node processes exported; {done}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
