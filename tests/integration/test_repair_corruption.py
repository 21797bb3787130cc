#!/usr/bin/env python3
"""Corruption (issue 5): a record's bytes are damaged on one replica's disk (offline, with the
test-only tool ringstore-corrupt-for-test). A read still returns the right bytes, and the bad
copy is repaired: by read repair where a read asked that replica, and by the scrub for the
rest. The tool checks the copies on the stopped node's disk.

Run: python3 tests/integration/test_repair_corruption.py --bin-dir build
"""

import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import EXIT_OK, check, expect_rc, log, run_tool, start_ring, wait_until  # noqa: E402
from repair_common import QUORUM, REPAIR  # noqa: E402

NS = "default"
REPAIRED = re.compile(r"corrupt records found \d+, repaired (\d+)")


def tool(ctx, mode, node, key):
    return run_tool([os.path.join(ctx.bin_dir, "tests", "ringstore-corrupt-for-test"), mode,
                     os.path.join(node.data_dir, "db"), NS, key], timeout=60)


def repairs(ctx, node):
    """Records the node has repaired (scrub and read path), from `ringstore status` through it
    (a cluster of one node's view is enough: the summary sums every member)."""
    r = ctx.cli("status", cluster=node, cli_timeout=5)
    m = REPAIRED.search(r.stdout.decode())
    return int(m.group(1)) if m else 0


def test(ctx, args):
    nodes = start_ring(ctx, 3, REPAIR)
    blobs = {k: os.urandom(50000) for k in ("read-me", "read-me-too", "never-read")}
    for k, b in blobs.items():
        expect_rc(ctx.cli(*QUORUM, "put", k, cluster=nodes[0], input=b), EXIT_OK, f"put {k}")
    victim = nodes[1]
    check(victim.stop() == 0, "victim did not stop cleanly")
    for k in blobs:
        r = tool(ctx, "corrupt", victim, k)
        check(r.returncode == 0, f"corrupting {k}: {r.describe()}")
        check(tool(ctx, "check", victim, k).returncode == 1, f"{k} is not damaged after corrupting it")
    log(f"damaged {len(blobs)} records on the victim's disk")

    # Scrub off: reads must get around the damaged copy.
    victim.extra_args = REPAIR + ["--join", nodes[0].addr, "--scrub-rate", "0"]
    victim.start()
    for n in nodes:
        for k, b in blobs.items():
            if k == "never-read":
                continue
            g = expect_rc(ctx.cli(*QUORUM, "get", k, cluster=n), EXIT_OK, f"get {k} via {n.name}")
            check(g.stdout == b, f"get {k} via {n.name}: other bytes")
    log("every read returned the right bytes while one replica was damaged")
    check(victim.stop() == 0, "victim did not stop cleanly")
    still = [k for k in blobs if tool(ctx, "check", victim, k).returncode != 0]
    log(f"damaged copies the reads did not touch (read repair fixes only the replicas a read asks): {still}")
    check("never-read" in still, "the record nobody read was repaired with the scrub off")

    # Scrub on: it finds and repairs what the reads left.
    victim.extra_args = REPAIR + ["--join", nodes[0].addr]
    victim.start()
    if still:
        wait_until(lambda: repairs(ctx, victim) >= len(still), 60, "the victim's scrub to repair the damaged records",
                   interval=0.5)
    check(victim.stop() == 0, "victim did not stop cleanly")
    for k in blobs:
        r = tool(ctx, "check", victim, k)
        check(r.returncode == 0, f"{k} is still damaged on the victim: {r.describe()}")
    victim.start()
    log("the damaged copies are intact again")
    for n in nodes:
        def read_ok(n=n):
            g = ctx.cli("--replicas", "3", "--r", "3", "get", "never-read", cluster=n)
            return g.returncode == EXIT_OK and g.stdout == blobs["never-read"]
        # The victim came back on a new port: the others learn it by gossip.
        wait_until(read_ok, 20, f"an R=3 read of never-read via {n.name} to return its bytes", interval=0.2)
    return f"damaged copies were read around and repaired ({len(still)} of {len(blobs)} by the scrub)"


if __name__ == "__main__":
    harness.run(test, "repair_corruption", __doc__)
