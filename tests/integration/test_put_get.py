#!/usr/bin/env python3
"""ringstore put/get/rm/stat through the CLI against one real node, the CLI's exit codes, and
a graceful restart that keeps the data. Also `ringstore bench`'s open loop (--rate), its
latency log and its early end on SIGINT.

Run: python3 tests/integration/test_put_get.py --bin-dir build
"""

import os
import random
import re
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (EXIT_NOT_FOUND, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, check, expect_rc,  # noqa: E402
                     log, sha256, sha256_file)

MIB = 1 << 20
MAX_OBJECT = 64 * MIB  # kMaxValueBytes in dht/frame.h


def write_random(path, size):
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 * MIB)
            f.write(os.urandom(n))
            left -= n
    return sha256_file(path)


def stat_size(ctx, node, key):
    r = expect_rc(ctx.cli("stat", key, cluster=node), EXIT_OK, f"stat {key}")
    m = re.search(rb"^size:\s+(\d+)\s*$", r.stdout, re.M)
    check(m is not None, f"stat {key}: no 'size:' line in {r.stdout!r}")
    return int(m.group(1))


def put_file_get_file(ctx, node, key, size):
    src = ctx.path(f"{key}.in")
    dst = ctx.path(f"{key}.out")
    want = write_random(src, size)
    r = expect_rc(ctx.cli("put", key, src, cluster=node), EXIT_OK, f"put {key} from a file")
    check(str(size).encode() in r.stdout, f"put {key}: output does not mention {size} bytes: {r.stdout!r}")
    g = expect_rc(ctx.cli("get", key, dst, cluster=node), EXIT_OK, f"get {key} to a file")
    check(g.stdout == b"", f"get {key} FILE wrote to stdout too: {len(g.stdout)} bytes")
    got_size = os.path.getsize(dst)
    check(got_size == size, f"get {key}: file has {got_size} bytes, put {size}")
    check(sha256_file(dst) == want, f"get {key}: sha256 of the bytes read differs from the bytes put")
    check(stat_size(ctx, node, key) == size, f"stat {key}: wrong size")
    log(f"{key}: {size} bytes put in {r.elapsed:.2f}s, read back in {g.elapsed:.2f}s, sha256 equal")
    os.unlink(src)
    os.unlink(dst)
    return want


def check_readable(ctx, node, key, want_sha, size):
    g = expect_rc(ctx.cli("get", key, cluster=node), EXIT_OK, f"get {key} to stdout")
    check(len(g.stdout) == size and sha256(g.stdout) == want_sha,
          f"get {key}: read {len(g.stdout)} bytes with a different sha256 (want {size} bytes)")


def bench_result(text, what):
    m = re.search(r"^RESULT .* rate=(\d+) .* ops=(\d+) secs=([0-9.]+) .* errors=(\d+)$", text, re.M)
    check(m is not None, f"{what}: no RESULT line in {text!r}")
    return int(m.group(1)), int(m.group(2)), float(m.group(3)), int(m.group(4))


def check_bench(ctx, node):
    """--rate sends on a schedule (not as fast as the node allows), --latency-log writes one
    line per request, and SIGINT ends a long run with its RESULT line."""
    lat = ctx.path("bench.lat")
    r = expect_rc(ctx.cli("bench", "--op", "get", "--keys", 100, "--size", 64, "--rate", 200, "--duration", 2,
                          "--latency-log", lat, cluster=node), EXIT_OK, "bench --rate 200")
    rate, ops, secs, errors = bench_result(r.stdout.decode(), "bench --rate 200")
    check(errors == 0 and rate == 200, f"bench --rate 200: rate={rate} errors={errors}")
    # A closed loop of 64 on one node does thousands a second; the schedule allows 400 in 2 s.
    check(380 <= ops <= 401, f"bench --rate 200 --duration 2 did {ops} requests, want about 400")
    with open(lat) as f:
        lines = [ln.split() for ln in f]
    check(len(lines) == ops, f"latency log has {len(lines)} lines for {ops} requests")
    due = sorted(float(ln[0]) for ln in lines)
    check(due[0] < 0.05 and 1.9 < due[-1] < 2.0 and all(float(ln[1]) > 0 for ln in lines),
          f"latency log: due times {due[0]:.3f}..{due[-1]:.3f} s, want 0..2 s every 5 ms")
    check(all(abs(b - a - 0.005) < 1e-4 for a, b in zip(due, due[1:])), "latency log: requests not due every 5 ms")

    proc = subprocess.Popen([ctx.cli_bin, "--cluster", node.addr, "bench", "--op", "get", "--no-prefill",
                             "--keys", "100", "--size", "64", "--duration", "600"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    harness._register(proc)
    time.sleep(1.0)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    took = time.monotonic() - t0
    check(proc.returncode == 0, f"bench after SIGINT exited {proc.returncode}; stderr: {err}")
    _, stopped_ops, secs, errors = bench_result(out, "bench stopped by SIGINT")
    check(errors == 0 and stopped_ops > 0 and 0.5 < secs < 5 and took < 5,
          f"bench stopped by SIGINT: {stopped_ops} ops in {secs} s, exited {took:.1f} s after the signal")
    log(f"bench: --rate 200 did {ops} requests on schedule; SIGINT ended a 600 s run after {secs:.1f} s")


def test(ctx, args):
    rnd = random.Random(args.seed)
    node = ctx.node("node")
    node.start()

    # Large objects through files.
    digests = {}
    for key, size in (("obj-1m", MIB), ("obj-64m", MAX_OBJECT)):
        digests[key] = (put_file_get_file(ctx, node, key, size), size)

    # stdin / stdout forms: explicit "-", and FILE omitted.
    small = os.urandom(rnd.randrange(1, 300000))
    expect_rc(ctx.cli("put", "stdin-dash", "-", cluster=node, input=small), EXIT_OK, "put KEY - (stdin)")
    expect_rc(ctx.cli("put", "stdin-default", cluster=node, input=small[::-1]), EXIT_OK,
              "put KEY with FILE omitted (stdin)")
    g = expect_rc(ctx.cli("get", "stdin-dash", "-", cluster=node), EXIT_OK, "get KEY - (stdout)")
    check(g.stdout == small, f"get stdin-dash -: got {len(g.stdout)} bytes, want the {len(small)} put")
    g = expect_rc(ctx.cli("get", "stdin-default", cluster=node), EXIT_OK, "get KEY (stdout)")
    check(g.stdout == small[::-1], "get stdin-default: bytes differ from the ones put")
    check(stat_size(ctx, node, "stdin-dash") == len(small), "stat stdin-dash: wrong size")
    digests["stdin-dash"] = (sha256(small), len(small))

    # An empty object is an object.
    expect_rc(ctx.cli("put", "empty", cluster=node, input=b""), EXIT_OK, "put of an empty value")
    g = expect_rc(ctx.cli("get", "empty", cluster=node), EXIT_OK, "get of an empty value")
    check(g.stdout == b"", f"get empty: got {len(g.stdout)} bytes")
    check(stat_size(ctx, node, "empty") == 0, "stat empty: wrong size")

    # Overwrite: the newest value wins.
    expect_rc(ctx.cli("put", "stdin-default", cluster=node, input=b"v2"), EXIT_OK, "overwrite")
    g = expect_rc(ctx.cli("get", "stdin-default", cluster=node), EXIT_OK, "get after overwrite")
    check(g.stdout == b"v2", f"get after overwrite returned {g.stdout[:32]!r}..., want b'v2'")

    check_bench(ctx, node)

    # RINGSTORE_CLUSTER gives the address.
    g = expect_rc(ctx.cli("get", "stdin-dash", env={"RINGSTORE_CLUSTER": node.addr}), EXIT_OK,
                  "get with RINGSTORE_CLUSTER set and no --cluster")
    check(g.stdout == small, "get via RINGSTORE_CLUSTER: bytes differ")

    # rm, then get/stat/rm again exit 1; rm of a key that never existed exits 1.
    expect_rc(ctx.cli("put", "doomed", cluster=node, input=b"x" * 100), EXIT_OK, "put doomed")
    expect_rc(ctx.cli("rm", "doomed", cluster=node), EXIT_OK, "rm doomed")
    expect_rc(ctx.cli("get", "doomed", cluster=node), EXIT_NOT_FOUND, "get after rm")
    expect_rc(ctx.cli("stat", "doomed", cluster=node), EXIT_NOT_FOUND, "stat after rm")
    expect_rc(ctx.cli("rm", "doomed", cluster=node), EXIT_NOT_FOUND, "rm of an already removed key")
    expect_rc(ctx.cli("rm", "never-existed", cluster=node), EXIT_NOT_FOUND, "rm of a missing key")
    expect_rc(ctx.cli("get", "never-existed", cluster=node), EXIT_NOT_FOUND, "get of a missing key")
    expect_rc(ctx.cli("stat", "never-existed", cluster=node), EXIT_NOT_FOUND, "stat of a missing key")

    # Usage errors exit 2.
    for sub in ("put", "get", "rm", "stat"):
        expect_rc(ctx.cli(sub, cluster=node, input=b""), EXIT_USAGE, f"{sub} without KEY")
    expect_rc(ctx.cli("get", "obj-1m"), EXIT_USAGE, "get without --cluster or RINGSTORE_CLUSTER")
    expect_rc(ctx.cli("get", "obj-1m", cluster="no-port-here"), EXIT_USAGE, "--cluster without a port")
    expect_rc(ctx.cli("frobnicate", "k", cluster=node), EXIT_USAGE, "unknown subcommand")
    expect_rc(ctx.cli("put", "k", ctx.path("does-not-exist"), cluster=node), EXIT_USAGE,
              "put of a file that does not exist")
    too_big = ctx.path("too-big")
    write_random(too_big, MAX_OBJECT + 1)
    r = expect_rc(ctx.cli("put", "too-big", too_big, cluster=node), EXIT_USAGE, "put of a 64 MiB + 1 byte file")
    check(b"64 MiB" in r.stderr, f"too-big put: stderr does not name the limit: {r.stderr!r}")
    with open(too_big, "rb") as f:
        big_bytes = f.read()
    os.unlink(too_big)
    expect_rc(ctx.cli("put", "too-big", "-", cluster=node, input=big_bytes), EXIT_USAGE,
              "put of 64 MiB + 1 byte on stdin")
    del big_bytes
    expect_rc(ctx.cli("stat", "too-big", cluster=node), EXIT_NOT_FOUND, "the too-big object must not exist")

    # Unreachable address exits 3 (a port that is bound but not listening refuses connections).
    addr, holder = harness.unused_address()
    try:
        r = expect_rc(ctx.cli("get", "obj-1m", cluster=addr, cli_timeout=5), EXIT_UNREACHABLE,
                      "get from an address nobody listens on")
        r = expect_rc(ctx.cli("put", "k", cluster=addr, cli_timeout=5, input=b"v"), EXIT_UNREACHABLE,
                      "put to an address nobody listens on")
    finally:
        holder.close()

    # Wrong cluster id exits 3 and says why.
    r = expect_rc(ctx.cli("get", "obj-1m", cluster=node, cluster_id="some-other-cluster"), EXIT_UNREACHABLE,
                  "get with a wrong --cluster-id")
    err = r.stderr.decode(errors="replace").lower()
    check("cluster id" in err, f"wrong --cluster-id: stderr does not mention the cluster id: {err!r}")
    r = expect_rc(ctx.cli("put", "wrong-id", cluster=node, cluster_id="some-other-cluster", input=b"v"),
                  EXIT_UNREACHABLE, "put with a wrong --cluster-id")
    expect_rc(ctx.cli("stat", "wrong-id", cluster=node), EXIT_NOT_FOUND,
              "a put refused for its cluster id must not store anything")

    # Graceful restart keeps everything (and the deletion).
    rc = node.stop()
    check(rc == 0, f"node exited {rc} after SIGTERM, want 0; log tail:\n{harness.tail(node.log())}")
    text = node.log()
    check(f"signal {int(signal.SIGTERM)}: stopping" in text, "node did not log 'signal 15: stopping'")
    check(text.rstrip().endswith("stopped"), f"node's last log line is not 'stopped': "
                                             f"{text.splitlines()[-1:]}")
    old_addr = node.addr
    node.start()
    log(f"restarted on the same data dir ({old_addr} -> {node.addr})")
    for key, (want, size) in digests.items():
        check_readable(ctx, node, key, want, size)
    expect_rc(ctx.cli("get", "doomed", cluster=node), EXIT_NOT_FOUND, "a deleted key after restart")
    g = expect_rc(ctx.cli("get", "stdin-default", cluster=node), EXIT_OK, "overwritten key after restart")
    check(g.stdout == b"v2", "overwritten key came back with an old value after restart")
    rc = node.stop()
    check(rc == 0, f"node exited {rc} after the second SIGTERM, want 0")
    return f"{len(digests)} objects (up to 64 MiB) round-tripped, exit codes 0/1/2/3 checked, restart kept data"


if __name__ == "__main__":
    harness.run(test, "test_put_get", __doc__)
