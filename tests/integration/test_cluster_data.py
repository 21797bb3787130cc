#!/usr/bin/env python3
"""Replicated data on a ring of real processes (issue 3, data part).

Five nodes form a ring. 10,000 objects are written with N=3, W=2 through a client connected
to one node, then read back and checked byte for byte (R=2) through a client connected to
another node. A single object put through one node is read through every other one. After
`kill -9` of a node, every object is still readable and new writes with W=2 still succeed,
both before and after the ring has declared the node down; after its restart, everything is
checked once more.

Run: python3 tests/integration/test_cluster_data.py --bin-dir build
"""

import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import EXIT_OK, check, expect_rc, log, node_id, ring, start_ring, wait_until  # noqa: E402

NODES = 5
KEYS = 10000
FAST_FD = ["--probe-interval-ms", "300", "--suspicion-timeout-ms", "1500"]
QUORUM = ["--replicas", "3", "--w", "2", "--r", "2"]
RESULT = re.compile(r"RESULT op=(\w+) .* n=(\d+) w=(\d+) r=(\d+) ops=(\d+) .* ops_per_s=(\d+) .* errors=(\d+)")


def bench(ctx, node, op, keys, namespace, what):
    r = ctx.cli(*QUORUM, "bench", "--op", op, "--keys", keys, "--size", 256, "--in-flight", 64,
                "--connections", 1, "--bench-namespace", namespace, cluster=node, timeout=120)
    m = RESULT.search(r.stdout.decode())
    check(m is not None, f"{what}: no RESULT line; {r.describe()}")
    check((m.group(2), m.group(3), m.group(4)) == ("3", "2", "2"), f"{what}: quorum was not N=3 W=2 R=2: {m.group(0)}")
    check(int(m.group(7)) == 0 and r.returncode == EXIT_OK, f"{what}: {m.group(7)} errors; {r.describe()}")
    check(int(m.group(5)) == keys, f"{what}: {m.group(5)} of {keys} keys done")
    log(f"{what}: {keys} keys, {m.group(6)} ops/s, no errors")


def test(ctx, args):
    nodes = start_ring(ctx, NODES, FAST_FD)
    writer, reader = nodes[0], nodes[3]

    # 10,000 objects in through one node, out through another, every byte checked.
    bench(ctx, writer, "fill", KEYS, "load", f"write {KEYS} objects via {writer.name}")
    bench(ctx, reader, "check", KEYS, "load", f"read {KEYS} objects via {reader.name}")

    # One object through the CLI, read through every node.
    blob = os.urandom(100000)
    expect_rc(ctx.cli(*QUORUM, "put", "one", cluster=writer, input=blob), EXIT_OK, "put via n1")
    for n in nodes:
        g = expect_rc(ctx.cli(*QUORUM, "get", "one", cluster=n), EXIT_OK, f"get via {n.name}")
        check(g.stdout == blob, f"get via {n.name}: other bytes")

    # kill -9 one node: reads and W=2 writes go on, before and after it is declared down.
    victim = nodes[2]
    victim_id = node_id(victim)
    victim.kill9()
    live = [n for n in nodes if n is not victim]
    bench(ctx, live[1], "check", KEYS, "load", "read everything right after kill -9")
    bench(ctx, live[2], "fill", 2000, "after-kill", "write 2000 objects (W=2) right after kill -9")
    wait_until(lambda: all(ring(ctx, n)["rows"][victim_id]["state"] == "down" for n in live), 10,
               f"every member to declare {victim.name} down")
    bench(ctx, live[3], "check", KEYS, "load", "read everything with the node declared down")
    bench(ctx, live[0], "check", 2000, "after-kill", "read the writes made while it was dead")

    # Restart: everything still reads back.
    victim.extra_args = FAST_FD + ["--join", nodes[0].addr]
    victim.start()
    wait_until(lambda: ring(ctx, nodes[0])["rows"][victim_id]["state"] == "up", 15, f"{victim.name} to be up again")
    bench(ctx, victim, "check", KEYS, "load", "read everything through the restarted node")
    for n in nodes:
        check(n.stop() == 0, f"{n.name} did not exit cleanly on SIGTERM")
    return f"{KEYS} objects N=3 W=2 R=2 written via one node, read via others; survived kill -9 and restart"


if __name__ == "__main__":
    harness.run(test, "test_cluster_data", __doc__)
