#!/usr/bin/env python3
"""Nodes join by themselves and detect failures (issue 3, membership part).

Five nodes, each told only the first one's address, converge on one route table (same digest
on every member) within a bound, and `ringstore ring` lists five up nodes with balanced ring
shares. A node started with another --cluster-id is refused, with a clear error on both sides.
A node killed with -9 is declared down by every member within the failure-detection bound,
and after a restart on its data dir it is up again with the same identity and ring IDs.

Run: python3 tests/integration/test_cluster_membership.py --bin-dir build
"""

import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import EXIT_OK, check, expect_rc, log, node_id, ring, start_ring, wait_until  # noqa: E402

NODES = 5
PROBE_MS, SUSPICION_MS = 300, 1500
FAST_FD = ["--probe-interval-ms", str(PROBE_MS), "--suspicion-timeout-ms", str(SUSPICION_MS)]
CONVERGE_BOUND_S = 20
# Every member probes each other member once per round (4 members x 0.3 s), then the suspicion
# timeout, then gossip spreads the verdict: about 3-4 s. The test allows 10 s.
DOWN_BOUND_S = 10

def test(ctx, args):
    t0 = time.monotonic()
    nodes = start_ring(ctx, NODES, FAST_FD, CONVERGE_BOUND_S)
    first = nodes[0]
    join_s = time.monotonic() - t0
    log(f"{NODES} nodes converged on one table in {join_s:.1f}s")
    view = ring(ctx, nodes[-1])
    shares = [row["ring"] for row in view["rows"].values()]
    check(len(shares) == NODES, f"ring lists {len(shares)} nodes, want {NODES}")
    check(max(shares) / min(shares) <= 1.25, f"ring shares unbalanced: {shares}")
    st = expect_rc(ctx.cli("status", cluster=nodes[1]), EXIT_OK, "status").stdout.decode()
    check(f"HEALTHY: {NODES} members ({NODES} up" in st, f"status of a whole ring:\n{st}")

    # Another cluster's node is refused, and both sides say why.
    stranger = ctx.node("stranger", cluster_id="another-cluster", extra_args=["--join", first.addr])
    stranger.start()
    wait_until(lambda: "refused this node" in stranger.log() and "cluster id mismatch" in stranger.log(),
               10, "the stranger to log that it was refused")
    wait_until(lambda: "refused connection" in first.log() and "cluster id mismatch" in first.log(),
               10, "n1 to log that it refused the stranger")
    check(ring(ctx, first)["nodes"] == NODES, "the stranger made it into the ring")
    check(stranger.stop() == 0, "the stranger did not stop cleanly")

    # kill -9: declared down by every live member within the bound.
    victim = nodes[2]
    victim_id = node_id(victim)
    share_before = ring(ctx, first)["rows"][victim_id]["ring"]
    victim.kill9()
    live = [n for n in nodes if n is not victim]
    st = expect_rc(ctx.cli("status", cluster=first), EXIT_OK, "status after kill -9").stdout.decode()
    check("DEGRADED" in st and f"{NODES - 1} reachable" in st, f"status right after kill -9:\n{st}")
    t0 = time.monotonic()
    wait_until(lambda: all(ring(ctx, n)["rows"][victim_id]["state"] == "down" for n in live), DOWN_BOUND_S,
               f"every member to declare {victim.name} down")
    down_s = time.monotonic() - t0
    log(f"{victim.name} declared down everywhere {down_s:.1f}s after kill -9")

    # Restart: up again, same identity (no sixth entry) and the same ring IDs (same share).
    victim.extra_args = FAST_FD + ["--join", first.addr]
    victim.start()
    wait_until(lambda: all(ring(ctx, n)["rows"][victim_id]["state"] == "up" and ring(ctx, n)["nodes"] == NODES
                           for n in nodes), 15, f"{victim.name} to be up again everywhere")
    after = ring(ctx, first)
    check(after["rows"][victim_id]["address"] == victim.addr, "the restarted node's new address did not spread")
    check(abs(after["rows"][victim_id]["ring"] - share_before) < 1e-9,
          f"ring share changed across the restart: {share_before} -> {after['rows'][victim_id]['ring']}")
    for n in nodes:
        check(n.stop() == 0, f"{n.name} did not exit cleanly on SIGTERM")
    return (f"{NODES} nodes joined in {join_s:.1f}s; stranger refused; kill -9 seen as down in {down_s:.1f}s; "
            f"restart kept its identity")


if __name__ == "__main__":
    harness.run(test, "test_cluster_membership", __doc__)
