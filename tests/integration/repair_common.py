"""Helpers shared by the repair tests (issue 5): reading `ringstore status` and `ringstore node
verify`, and a verified read load that runs in the background (`ringstore bench --op get`,
which checks every value it reads and counts every failed read as an error)."""

import re
import time

from harness import EXIT_OK, check, log, spawn, wait_until

FAST_FD = ["--probe-interval-ms", "300", "--suspicion-timeout-ms", "1500"]
REPAIR = FAST_FD + ["--repair-interval", "2"]
QUORUM = ["--replicas", "3", "--w", "2", "--r", "2"]
RESULT = re.compile(r"RESULT op=(\w+) .* ops=(\d+) .* ops_per_s=(\d+) .* p50_us=([0-9.]+) p99_us=([0-9.]+) errors=(\d+)")
STATUS_ROW = re.compile(r"^([0-9a-f]{8})\s+(\d+)\+?\s+(yes|no)\s+(\d+)\s+(\d+)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s+"
                        r"([0-9.]+)\s+(\S+)\s+(\d+)")
VERIFY = re.compile(r"under-replicated: (\d+); copies on nodes outside the placement \(to be handed off\): (\d+); "
                    r"corrupt records: (\d+)")
OBJECTS = re.compile(r"^(\d+) objects \((\d+) of them tombstones\) on (\d+) nodes")
LISTED = re.compile(r"listed ([0-9a-f]{8}) at \S+: (\d+) records")


def fill(ctx, node, keys, size, namespace):
    r = ctx.cli(*QUORUM, "bench", "--op", "fill", "--keys", keys, "--size", size, "--in-flight", 64,
                "--bench-namespace", namespace, cluster=node, timeout=300)
    m = RESULT.search(r.stdout.decode())
    check(m is not None and r.returncode == EXIT_OK and int(m.group(6)) == 0, f"fill: {r.describe()}")
    log(f"wrote {keys} objects of {size} bytes ({m.group(3)} ops/s)")


def status(ctx, node):
    """Per node id prefix: round, synced, records, to hand off, pulled/pushed MB, under."""
    r = ctx.cli("status", cluster=node, cli_timeout=5)
    rows = {}
    for line in r.stdout.decode().splitlines():
        m = STATUS_ROW.match(line.strip())
        if m:
            rows[m.group(1)] = {"round": int(m.group(2)), "synced": m.group(3) == "yes", "records": int(m.group(4)),
                                "handoff": int(m.group(5)), "pulled_mb": float(m.group(6)),
                                "pushed_mb": float(m.group(7)), "under": int(m.group(11))}
    return rows


def verify(ctx, node, n=3):
    """`ringstore node verify`: objects, under-replicated, extra (misplaced) and corrupt copies."""
    r = ctx.cli("node", "verify", "--n", n, cluster=node, timeout=120)
    text = r.stdout.decode()
    m, o = VERIFY.search(text), None
    for line in text.splitlines():
        o = o or OBJECTS.match(line)
    check(m is not None and o is not None, f"node verify: unexpected output: {r.describe()}")
    held = {mm.group(1): int(mm.group(2)) for mm in LISTED.finditer(r.stderr.decode())}
    return {"ok": r.returncode == EXIT_OK, "objects": int(o.group(1)), "nodes": int(o.group(3)),
            "under": int(m.group(1)), "extra": int(m.group(2)), "corrupt": int(m.group(3)), "held": held,
            "text": text}


def wait_whole(ctx, node, objects, bound_s, what, n=3, last=None):
    """Waits until every object has its N copies on its placement nodes and no copy is left
    elsewhere; returns the seconds it took (and leaves the last verify in `last`)."""
    t0 = time.monotonic()
    last = {} if last is None else last

    def whole():
        last.update(verify(ctx, node, n))
        return last["ok"] and last["extra"] == 0 and last["objects"] == objects

    try:
        wait_until(whole, bound_s, what, interval=1.0)
    except Exception:
        log(f"last verify:\n{last.get('text', '')}")
        raise
    return time.monotonic() - t0


class ReadLoad:
    """`ringstore bench --op get` over keys already written, for `seconds`, in the background."""

    def __init__(self, ctx, node, keys, size, namespace, seconds, in_flight=16):
        self.log_path = ctx.path(f"readload-{namespace}.log")
        cmd = [ctx.cli_bin, "--cluster", node.addr, *QUORUM, "bench", "--op", "get", "--no-prefill", "--keys", keys,
               "--size", size, "--duration", seconds, "--in-flight", in_flight, "--connections", 1,
               "--bench-namespace", namespace]
        self.proc = spawn(cmd, self.log_path)
        log(f"read load started: {keys} keys for {seconds} s (pid {self.proc.pid})")

    def finish(self, timeout):
        """Waits for the load to end; returns (reads, errors, p50_us, p99_us)."""
        wait_until(lambda: self.proc.poll() is not None, timeout, "the read load to finish", interval=0.2)
        with open(self.log_path) as f:
            text = f.read()
        m = RESULT.search(text)
        check(m is not None, f"read load: no RESULT line (exit {self.proc.returncode}):\n{text[-2000:]}")
        reads, errors = int(m.group(2)), int(m.group(6))
        check(errors == 0 and self.proc.returncode == EXIT_OK,
              f"read load: {errors} failed reads of {reads} (exit {self.proc.returncode}):\n{text[-2000:]}")
        return reads, errors, float(m.group(4)), float(m.group(5))
