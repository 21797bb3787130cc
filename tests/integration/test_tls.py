#!/usr/bin/env python3
"""TLS with mutual authentication and client roles (issue 8).

`ringstore cert` makes a CA and issues node and client certificates (files mode 0600). Three
nodes run with --tls-dir and form a ring; a client with a read-write certificate stores and
reads objects; a fourth TLS node joins and repair hands it its share (`node verify`, with an
admin certificate, finds every object whole on its placement). The test asserts the error
text when:
  - a plaintext client reaches a TLS node, and a TLS client reaches a plaintext node;
  - a client presents a certificate from another CA, or an expired one;
  - a read-only client writes, and a read-write client asks for an admin's SCAN;
  - a read-write client creates or removes a volume or a filesystem (admin only);
  - a client restricted to a namespace reads or writes another one;
  - a plaintext node tries to join the TLS cluster (both sides log why, and it stays out).

Run: python3 tests/integration/test_tls.py --bin-dir build
"""

import os
import socket
import stat
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import EXIT_ERROR, EXIT_OK, EXIT_UNREACHABLE, check, expect_rc, log, ring, wait_until  # noqa: E402
from repair_common import OBJECTS as VERIFIED, verify, wait_whole  # noqa: E402

OBJECTS = 40
FAST = ["--probe-interval-ms", "300", "--suspicion-timeout-ms", "1500", "--repair-interval", "2"]


def cert(ctx, *args, want=EXIT_OK):
    return expect_rc(ctx.cli("cert", *args), want, "cert " + " ".join(str(a) for a in args))


def stderr_of(result):
    return result.stderr.decode(errors="replace")


def test(ctx, args):
    pki = ctx.mkdtemp("pki-")
    ca, other_ca = os.path.join(pki, "ca"), os.path.join(pki, "other-ca")
    cert(ctx, "init-ca", ca)
    cert(ctx, "init-ca", other_ca)
    again = cert(ctx, "init-ca", ca, want=harness.EXIT_USAGE)
    check("exists; pass --force" in stderr_of(again), f"init-ca over a CA: {again.describe()}")
    dirs = {}
    for i in range(1, 5):
        dirs[f"n{i}"] = os.path.join(pki, f"n{i}")
        cert(ctx, "issue", "node", f"n{i}", "--ca", ca, "--out", dirs[f"n{i}"])
    for role in ("read-only", "read-write", "admin"):
        dirs[role] = os.path.join(pki, role)
        cert(ctx, "issue", "client", role, "--role", role, "--ca", ca, "--out", dirs[role])
    dirs["stranger"] = os.path.join(pki, "stranger")
    cert(ctx, "issue", "client", "stranger", "--role", "admin", "--ca", other_ca, "--out", dirs["stranger"])
    dirs["expired"] = os.path.join(pki, "expired")
    cert(ctx, "issue", "client", "old", "--role", "admin", "--ca", ca, "--out", dirs["expired"], "--days", "1",
         "--backdate", "3")
    for d in (ca, dirs["n1"], dirs["read-write"]):
        for f in os.listdir(d):
            mode = stat.S_IMODE(os.stat(os.path.join(d, f)).st_mode)
            check(mode == 0o600, f"{d}/{f} has mode {oct(mode)}, want 0600")
    shown = expect_rc(ctx.cli("cert", "show", dirs["expired"]), EXIT_OK, "cert show").stdout.decode()
    check("client 'old' (admin)" in shown and "EXPIRED" in shown, f"cert show of the expired certificate:\n{shown}")

    # Three TLS nodes form a ring.
    ctx.cli_tls_dir = dirs["admin"]
    first = ctx.node("n1", extra_args=FAST + ["--tls-dir", dirs["n1"]])
    first.start()
    nodes = [first]
    for i in (2, 3):
        n = ctx.node(f"n{i}", extra_args=FAST + ["--tls-dir", dirs[f"n{i}"], "--join", first.addr])
        n.start()
        nodes.append(n)
    wait_until(lambda: all(ring(ctx, n)["up"] == 3 for n in nodes), 20, "3 TLS nodes to form one ring")
    # A peer that connects and never starts its handshake is dropped after 10 s (checked at the end).
    host, port = first.addr.rsplit(":", 1)
    silent = socket.create_connection((host, int(port)), timeout=30)
    silent_t0 = time.monotonic()

    # A read-write client stores and reads; a read-only one reads.
    values = {f"k{i}": os.urandom(100 + i * 37) for i in range(OBJECTS)}
    ctx.cli_tls_dir = dirs["read-write"]
    for k, v in values.items():
        expect_rc(ctx.cli("put", k, "-", cluster=first, input=v), EXIT_OK, f"put {k} over TLS")
    ctx.cli_tls_dir = dirs["read-only"]
    for k, v in values.items():
        r = expect_rc(ctx.cli("get", k, cluster=nodes[1]), EXIT_OK, f"get {k} over TLS (read-only)")
        check(r.stdout == v, f"get {k}: wrong bytes")

    # Roles: read-only may not write; read-write may not scan (node verify).
    r = expect_rc(ctx.cli("put", "nope", "-", cluster=first, input=b"x"), EXIT_ERROR, "put with read-only")
    check("permission denied: client 'read-only' (read-only) may not send" in stderr_of(r) and
          "needs the read-write role" in stderr_of(r), f"read-only put: {r.describe()}")
    ctx.cli_tls_dir = dirs["read-write"]
    r = ctx.cli("node", "verify", cluster=first)
    check(r.returncode != EXIT_OK and "may not send SCAN (it needs the admin role)" in r.stdout.decode(),
          f"node verify with read-write: {r.describe()}")

    # Only admin manages volumes and filesystems: their catalogs are admin-only namespaces.
    for what in (("volume", "create", "v1", "16M"), ("fs", "create", "f1")):
        r = ctx.cli(*what, cluster=first)
        check(r.returncode != EXIT_OK and "may not write namespace 'ringstore." in stderr_of(r) and
              "with the admin role" in stderr_of(r), f"{' '.join(what)} with read-write: {r.describe()}")
    ctx.cli_tls_dir = dirs["admin"]
    expect_rc(ctx.cli("volume", "create", "v1", "16M", cluster=first), EXIT_OK, "volume create with admin")
    expect_rc(ctx.cli("fs", "create", "f1", cluster=first), EXIT_OK, "fs create with admin")
    ctx.cli_tls_dir = dirs["read-write"]
    listed = expect_rc(ctx.cli("volume", "ls", cluster=first), EXIT_OK, "volume ls with read-write").stdout.decode()
    check("v1" in listed, f"volume ls with read-write: {listed!r}")
    expect_rc(ctx.cli("put", "v1-data", "-", cluster=first, input=b"x"), EXIT_OK, "read-write put")
    r = ctx.cli("volume", "rm", "v1", cluster=first)
    check(r.returncode != EXIT_OK and "may not write namespace" in stderr_of(r), f"volume rm with read-write: {r.describe()}")

    # A namespace-restricted client touches only its namespace.
    dirs["photos"] = os.path.join(pki, "photos")
    cert(ctx, "issue", "client", "bob", "--role", "read-write", "--namespace", "photos", "--ca", ca, "--out",
         dirs["photos"])
    r = cert(ctx, "issue", "client", "root2", "--role", "admin", "--namespace", "photos", "--ca", ca, "--out",
             os.path.join(pki, "root2"), want=harness.EXIT_USAGE)
    check("an admin client cannot be restricted" in stderr_of(r), f"admin with --namespace: {r.describe()}")
    shown = expect_rc(ctx.cli("cert", "show", dirs["photos"]), EXIT_OK, "cert show").stdout.decode()
    check("client 'bob' (read-write, namespace 'photos')" in shown, f"cert show of bob:\n{shown}")
    ctx.cli_tls_dir = dirs["photos"]
    expect_rc(ctx.cli("--namespace", "photos", "put", "cat.jpg", "-", cluster=first, input=b"meow"), EXIT_OK,
              "put in its own namespace")
    r = expect_rc(ctx.cli("--namespace", "photos", "get", "cat.jpg", cluster=nodes[2]), EXIT_OK, "get in its namespace")
    check(r.stdout == b"meow", "get in its own namespace: wrong bytes")
    r = ctx.cli("--namespace", "videos", "put", "dog.mp4", "-", cluster=first, input=b"woof")
    check(r.returncode != EXIT_OK and "client 'bob' (read-write, namespace 'photos') may not use namespace 'videos'" in
          stderr_of(r), f"put in another namespace: {r.describe()}")
    r = ctx.cli("get", "k1", cluster=first)  # the default namespace
    check(r.returncode != EXIT_OK and "may not use namespace 'default'" in stderr_of(r),
          f"get in another namespace: {r.describe()}")

    # Refusals, with the reason on the client's side.
    ctx.cli_tls_dir = None
    r = expect_rc(ctx.cli("get", "k1", cluster=first), EXIT_UNREACHABLE, "plaintext client at a TLS node")
    check("this node requires TLS" in stderr_of(r), f"plaintext client: {r.describe()}")
    ctx.cli_tls_dir = dirs["stranger"]
    r = expect_rc(ctx.cli("get", "k1", cluster=first), EXIT_UNREACHABLE, "client of another CA")
    check("does not verify against our ca.crt" in stderr_of(r), f"another CA: {r.describe()}")
    ctx.cli_tls_dir = dirs["expired"]
    r = expect_rc(ctx.cli("get", "k1", cluster=first), EXIT_UNREACHABLE, "expired client certificate")
    check("refused this party's certificate" in stderr_of(r) and "expired" in stderr_of(r),
          f"expired certificate: {r.describe()}")
    wait_until(lambda: "certificate has expired" in first.log(), 5, "n1 to log the expired certificate")

    # A plaintext node cannot join; both sides say why.
    plain = ctx.node("plain", extra_args=FAST + ["--join", first.addr])
    plain.start()
    wait_until(lambda: "this node requires TLS" in plain.log(), 10, "the plaintext node to log its refusal")
    wait_until(lambda: "requires TLS" in first.log(), 10, "n1 to log that it refused plaintext")
    # ... and a TLS client at the plaintext node is told it does not speak TLS.
    ctx.cli_tls_dir = dirs["admin"]
    r = expect_rc(ctx.cli("get", "k1", cluster=plain), EXIT_UNREACHABLE, "TLS client at a plaintext node")
    check("the peer does not speak TLS" in stderr_of(r), f"TLS client at a plaintext node: {r.describe()}")
    check(plain.stop() == 0, "the plaintext node did not stop cleanly")
    check(ring(ctx, first)["nodes"] == 3, "the plaintext node made it into the ring")

    # Nothing was deleted by the refused removes (no tombstones), and the store holds the objects
    # put, the volume's and filesystem's metadata and catalogs, and the restricted client's one.
    held = verify(ctx, first)
    stored = held["objects"]
    counts = next(m for m in map(VERIFIED.match, held["text"].splitlines()) if m)
    tombstones = int(counts.group(2))
    check(tombstones == 0, f"refused removes deleted objects:\n{held['text']}")
    check(stored == OBJECTS + 1 + 5 + 1, f"{stored} objects stored, want {OBJECTS + 7}:\n{held['text']}")

    # Join and repair over TLS: a fourth node gets its share; every object ends whole.
    t0 = time.monotonic()
    fourth = ctx.node("n4", extra_args=FAST + ["--tls-dir", dirs["n4"], "--join", first.addr])
    fourth.start()
    nodes.append(fourth)
    wait_until(lambda: all(ring(ctx, n)["up"] == 4 for n in nodes), 20, "4 TLS nodes in one ring")
    wait_whole(ctx, first, stored, 60, "every object whole on the 4-node TLS ring")
    join_s = time.monotonic() - t0
    ctx.cli_tls_dir = dirs["read-only"]
    for k, v in values.items():
        r = expect_rc(ctx.cli("get", k, cluster=fourth), EXIT_OK, f"get {k} via the new node")
        check(r.stdout == v, f"get {k} via the new node: wrong bytes")
    wait_until(lambda: "no TLS handshake within 10000 ms" in first.log(), max(1.0, 15 - (time.monotonic() - silent_t0)),
               "n1 to drop the peer that never started its TLS handshake")
    check(silent.recv(1) == b"", "the silent peer's connection is still open")
    silent.close()
    for n in nodes:
        check(n.stop() == 0, f"{n.name} did not exit cleanly on SIGTERM")
    return (f"{OBJECTS} objects over TLS; roles and namespaces enforced; plaintext, other-CA and expired peers refused with "
            f"clear errors; a 4th node joined and repair made every object whole in {join_s:.1f}s")


if __name__ == "__main__":
    harness.run(test, "test_tls", __doc__)
