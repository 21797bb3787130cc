#!/usr/bin/env python3
"""Acknowledged writes survive kill -9 (guarantee G1 on one node, --durability sync).

Scenario A (three rounds on the same data dir): writer threads run `ringstore put` of distinct keys with random values; a key
counts as acknowledged only when the CLI exited 0. While writes are still running the node
is SIGKILLed, then restarted on the same data dir. Every acknowledged key must read back
with the same bytes. A key whose put was in flight at the kill may be absent, but if it is
present it must hold exactly the value that was being written (no torn or foreign values).

Scenario B: a burst of writes all finish (all acknowledged), the node is SIGKILLed at once,
restarted, and every key of both scenarios must read back.

Run: python3 tests/integration/test_crash_recovery.py --bin-dir build
"""

import concurrent.futures
import os
import random
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import EXIT_NOT_FOUND, EXIT_OK, TestFailure, check, log, sha256, wait_until  # noqa: E402

WRITERS = 6
ROUNDS = 3                  # scenario A runs this many times on the same data dir
TARGET_ACKED = 300          # kill once this many writes are acknowledged...
MIN_IN_FLIGHT_AT_KILL = 1   # ...and at least this many CLI puts are running
ACK_DEADLINE_S = 40.0
BURST = 200
CLI_REQUEST_TIMEOUT_S = 10  # --timeout for each CLI request
MAX_VALUE = 8192


class Writers:
    """WRITERS threads putting distinct keys until stopped. Records acked and attempted values."""

    def __init__(self, ctx, node, prefix, seed):
        self.ctx, self.node, self.prefix = ctx, node, prefix
        self.lock = threading.Lock()
        self.acked = {}       # key -> sha256, CLI exited 0
        self.attempted = {}   # key -> sha256, CLI did not exit 0 (outcome unknown)
        self.failures = {}    # exit code -> count, for the log
        self.in_flight = 0
        self.stop = threading.Event()
        self.errors = []
        self.threads = [threading.Thread(target=self._run, args=(i, seed + i), daemon=True)
                        for i in range(WRITERS)]

    def _run(self, idx, seed):
        rnd = random.Random(seed)
        i = 0
        try:
            while not self.stop.is_set():
                key = f"{self.prefix}-w{idx}-{i}"
                i += 1
                value = rnd.randbytes(rnd.randrange(0, MAX_VALUE + 1))
                digest = sha256(value)
                with self.lock:
                    self.in_flight += 1
                try:
                    r = self.ctx.cli("put", key, cluster=self.node.addr, input=value,
                                     cli_timeout=CLI_REQUEST_TIMEOUT_S, timeout=60)
                finally:
                    with self.lock:
                        self.in_flight -= 1
                with self.lock:
                    if r.returncode == EXIT_OK:
                        self.acked[key] = digest
                    else:
                        self.attempted[key] = digest
                        self.failures[r.returncode] = self.failures.get(r.returncode, 0) + 1
        except BaseException as e:  # reported by join()
            self.errors.append(f"writer {idx}: {e!r}")

    def start(self):
        for t in self.threads:
            t.start()

    def snapshot(self):
        with self.lock:
            return len(self.acked), self.in_flight

    def join(self, timeout=90):
        self.stop.set()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
            check(not t.is_alive(), "a writer thread did not finish")
        check(not self.errors, f"writer threads failed: {self.errors}")


def verify(ctx, node, acked, maybe, what):
    """Every key in acked must read back with its sha256; keys in maybe may be missing but
    must not hold anything other than the value that was being written."""
    problems = []
    present_maybe = 0

    def one(key, digest, must):
        r = ctx.cli("get", key, cluster=node, cli_timeout=CLI_REQUEST_TIMEOUT_S, timeout=60)
        if r.returncode == EXIT_OK:
            if sha256(r.stdout) != digest:
                return f"{key}: read back {len(r.stdout)} bytes that differ from the value written"
            return "present"
        if r.returncode == EXIT_NOT_FOUND and not must:
            return None
        return f"{key}: {'acknowledged write ' if must else ''}not readable: {r.describe()}"

    items = [(k, d, True) for k, d in acked.items()] + [(k, d, False) for k, d in maybe.items()]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        for (_, _, must), res in zip(items, pool.map(lambda it: one(*it), items)):
            if res == "present":
                present_maybe += 0 if must else 1
            elif res is not None:
                problems.append(res)
    if problems:
        shown = "\n  ".join(problems[:20])
        raise TestFailure(f"{what}: {len(problems)} of {len(acked)} acknowledged/in-flight keys are wrong:\n"
                          f"  {shown}")
    log(f"{what}: all {len(acked)} acknowledged keys read back intact "
        f"({len(maybe)} unacknowledged keys checked: {present_maybe} present with the value "
        f"being written, the rest absent)")


def scenario_kill_during_writes(ctx, node, seed, prefix):
    w = Writers(ctx, node, prefix, seed)
    w.start()
    try:
        def ready_to_kill():
            n, inflight = w.snapshot()
            if w.errors:
                raise TestFailure(f"writer failed: {w.errors}")
            return n >= TARGET_ACKED and inflight >= MIN_IN_FLIGHT_AT_KILL

        wait_until(ready_to_kill, ACK_DEADLINE_S,
                   f"{TARGET_ACKED} acknowledged writes with writes still in flight")
        n_at_kill, inflight = w.snapshot()
        node.kill9()
        log(f"SIGKILL with {n_at_kill} writes acknowledged and {inflight} CLI puts in flight")
        # Keep writing against the dead node until its failures show (puts fail fast: refused).
        def failed_puts():
            with w.lock:
                return sum(w.failures.values())

        wait_until(lambda: failed_puts() >= WRITERS, 30,
                   f"{WRITERS} puts to fail after the kill")
    finally:
        w.join()
    with w.lock:
        acked, attempted, failures = dict(w.acked), dict(w.attempted), dict(w.failures)
    check(len(acked) >= TARGET_ACKED, f"only {len(acked)} writes acknowledged")
    log(f"writers stopped: {len(acked)} acknowledged, {len(attempted)} not (exit codes {failures})")
    node.start()
    verify(ctx, node, acked, attempted, "after kill -9 during writes")
    return acked


def scenario_kill_after_burst(ctx, node, seed, earlier):
    rnd = random.Random(seed)
    values = {f"b-{i}": rnd.randbytes(rnd.randrange(0, MAX_VALUE + 1)) for i in range(BURST)}

    def put(item):
        key, value = item
        return key, ctx.cli("put", key, cluster=node.addr, input=value,
                            cli_timeout=CLI_REQUEST_TIMEOUT_S, timeout=60)

    with concurrent.futures.ThreadPoolExecutor(max_workers=WRITERS) as pool:
        results = list(pool.map(put, values.items()))
    bad = [r.describe() for _, r in results if r.returncode != EXIT_OK]
    check(not bad, f"{len(bad)} burst writes failed with the node up: {bad[:5]}")
    node.kill9()
    log(f"SIGKILL right after a burst of {BURST} acknowledged writes")
    node.start()
    acked = {k: sha256(v) for k, v in values.items()}
    verify(ctx, node, acked, {}, "after kill -9 right after a burst")
    verify(ctx, node, earlier, {}, "scenario A's keys after the last crash")
    return len(acked)


def test(ctx, args):
    node = ctx.node("node", durability="sync")
    node.start()
    acked_a = {}
    for rnd in range(ROUNDS):
        acked_a.update(scenario_kill_during_writes(ctx, node, args.seed + 100 * rnd, f"a{rnd}"))
    n_b = scenario_kill_after_burst(ctx, node, args.seed + 1000, acked_a)
    rc = node.stop()
    check(rc == 0, f"node exited {rc} after SIGTERM, want 0")
    return (f"{len(acked_a)} writes acknowledged across {ROUNDS} kill -9s mid-write and {n_b} before "
            f"a kill -9 after a burst; none lost")


if __name__ == "__main__":
    harness.run(test, "test_crash_recovery", __doc__)
