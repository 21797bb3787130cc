#!/usr/bin/env python3
"""Loss (issue 5): one of four nodes is killed with SIGKILL and never comes back. With
--replace-after 4 s, the others mark it left and rebuild its replicas, and every object is
back to N=3 copies on its placement nodes within the bound this test asserts.

Run: python3 tests/integration/test_rebalance_loss.py --bin-dir build
"""

import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, log, ring, start_ring, wait_until  # noqa: E402
from repair_common import REPAIR, ReadLoad, fill, wait_whole  # noqa: E402

KEYS = 20000
SIZE = 1024
REPLACE_AFTER_S = 4
# Detection (~2 s) + replace-after (4 s) + a few repair rounds: 60 s is generous on 2 cores.
REBUILT_BOUND_S = 60


def test(ctx, args):
    nodes = start_ring(ctx, 4, REPAIR + ["--replace-after", str(REPLACE_AFTER_S)])
    fill(ctx, nodes[0], KEYS, SIZE, "loss")
    wait_whole(ctx, nodes[0], KEYS, 60, "the 4 nodes to hold every object")
    victim = nodes[3]
    load = ReadLoad(ctx, nodes[0], KEYS, SIZE, "loss", seconds=15)
    victim.kill9()
    log(f"{victim.name} killed with SIGKILL for good")
    wait_until(lambda: any(r["address"] == victim.addr and r["state"] == "left"
                           for r in ring(ctx, nodes[0])["rows"].values()),
               30, f"{victim.name} to be replaced (left)", interval=0.5)
    took = wait_whole(ctx, nodes[0], KEYS, REBUILT_BOUND_S, "every object to have 3 copies again")
    reads, _, _, _ = load.finish(timeout=60)
    log(f"every object back to 3 copies {took:.1f} s after the replacement; {reads} reads, none failed")
    check(took <= REBUILT_BOUND_S, "rebuild too slow")
    return f"replicas rebuilt {took:.1f} s after the replacement; {reads} reads during it, none failed"


if __name__ == "__main__":
    harness.run(test, "rebalance_loss", __doc__)
