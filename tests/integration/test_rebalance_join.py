#!/usr/bin/env python3
"""Join under load (issue 5): a 3-node cluster holding 100,000 objects gets a 4th node while a
verified read load runs. No read fails; afterwards every object has its N=3 copies on its
placement nodes and nowhere else, and the data moved (pulled plus pushed, on every node) is
within 1.2x of the ideal: a quarter of the stored bytes.

Run: python3 tests/integration/test_rebalance_join.py --bin-dir build
"""

import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, log, node_id, start_ring  # noqa: E402
from repair_common import REPAIR, ReadLoad, fill, status, wait_whole  # noqa: E402

KEYS = 100000
SIZE = 256
MOVE_BOUND_S = 120


def test(ctx, args):
    nodes = start_ring(ctx, 3, REPAIR)
    fill(ctx, nodes[0], KEYS, SIZE, "join")
    wait_whole(ctx, nodes[0], KEYS, 60, "the 3 nodes to hold every object")

    load = ReadLoad(ctx, nodes[1], KEYS, SIZE, "join", seconds=30)
    newcomer = ctx.node("n4", extra_args=REPAIR + ["--join", nodes[0].addr])
    newcomer.start()
    final = {}
    took = wait_whole(ctx, nodes[0], KEYS, MOVE_BOUND_S, "every object to have its copies on the new placement",
                      last=final)
    log(f"data moved and old copies dropped {took:.1f} s after the join")
    reads, _, p50, p99 = load.finish(timeout=60)
    log(f"read load: {reads} verified reads during the join, none failed (p50 {p50:.0f} us, p99 {p99:.0f} us)")

    rows = status(ctx, nodes[0])
    moved_mb = sum(r["pulled_mb"] + r["pushed_mb"] for r in rows.values())
    ideal_mb = KEYS * SIZE * 3 / 4 / 1e6
    held = final["held"].get(node_id(newcomer), 0)
    check(held > 0, f"the new node holds nothing: {final['held']}")
    share = held / (KEYS * 3)
    log(f"moved {moved_mb:.1f} MB; ideal {ideal_mb:.1f} MB (a quarter of {KEYS} x {SIZE} B x 3); the new node "
        f"holds {held} records ({100 * share:.1f}% of the copies)")
    check(moved_mb <= 1.2 * ideal_mb, f"moved {moved_mb:.1f} MB, more than 1.2x the ideal {ideal_mb:.1f} MB")
    check(moved_mb >= 0.8 * ideal_mb, f"moved only {moved_mb:.1f} MB of an ideal {ideal_mb:.1f} MB")
    return f"join moved {moved_mb:.1f} MB (ideal {ideal_mb:.1f}) in {took:.1f} s; {reads} reads, none failed"


if __name__ == "__main__":
    harness.run(test, "rebalance_join", __doc__)
