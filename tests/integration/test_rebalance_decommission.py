#!/usr/bin/env python3
"""Decommission under load (issue 5): `ringstore node decommission` takes one of four nodes off
the ring while a verified read load runs. No read fails, the command reports the node has
left, and every object has N=3 copies on the remaining three.

Run: python3 tests/integration/test_rebalance_decommission.py --bin-dir build
"""

import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import EXIT_OK, check, expect_rc, log, ring, start_ring  # noqa: E402
from repair_common import REPAIR, ReadLoad, fill, wait_whole  # noqa: E402

KEYS = 20000
SIZE = 1024


def test(ctx, args):
    nodes = start_ring(ctx, 4, REPAIR)
    fill(ctx, nodes[0], KEYS, SIZE, "leave")
    wait_whole(ctx, nodes[0], KEYS, 60, "the 4 nodes to hold every object")
    leaving = nodes[2]
    load = ReadLoad(ctx, nodes[0], KEYS, SIZE, "leave", seconds=20)
    r = expect_rc(ctx.cli("node", "decommission", leaving.addr, "--poll", "0.5", cluster=nodes[0], timeout=180),
                  EXIT_OK, "node decommission")
    out = r.stdout.decode()
    check("left the cluster" in out, f"decommission did not report the node left:\n{out}")
    log(f"decommission done in {r.elapsed:.1f} s; {out.count('round')} progress lines")
    reads, _, _, _ = load.finish(timeout=60)
    took = wait_whole(ctx, nodes[0], KEYS, 60, "every object to have 3 copies on the 3 remaining nodes")
    view = ring(ctx, nodes[0])
    left = [row for row in view["rows"].values() if row["address"] == leaving.addr]
    check(left and left[0]["state"] == "left", f"the ring does not show {leaving.name} as left: {view}")
    check(leaving.stop() == 0, f"{leaving.name} did not stop cleanly after leaving")
    # Asking again is harmless: it has left already.
    r2 = expect_rc(ctx.cli("node", "decommission", leaving.addr, cluster=nodes[0], timeout=30), EXIT_OK,
                   "decommission again")
    check("already left" in r2.stdout.decode(), f"second decommission: {r2.describe()}")
    return f"decommissioned in {r.elapsed:.1f} s (+{took:.1f} s to verify); {reads} reads, none failed"


if __name__ == "__main__":
    harness.run(test, "rebalance_decommission", __doc__)
