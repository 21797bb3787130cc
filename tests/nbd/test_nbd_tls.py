#!/usr/bin/env python3
"""NBD over TLS: ringstore-block --tls-dir runs FORCEDTLS (issue 8).

A 3-node TLS ring; the gateway uses one certificate (`cert issue client gw --role read-write
--host 127.0.0.1`) for its links to the nodes and to serve NBD STARTTLS. libnbd's tools then:
  * nbdinfo over TLS with a read-write certificate sees the volume's size, writable;
  * with a read-only certificate, the same export is read-only;
  * without TLS, nbdinfo is refused (the gateway logs that options came without TLS);
  * with a certificate from another CA, the TLS handshake fails (the gateway logs why);
  * nbdcopy of 16 MiB of random data in and back out over TLS: the sha256 matches;
  * a gateway with a read-only certificate serves the export read-only, and one with a
    namespace-restricted certificate refuses to start.

Run: /usr/bin/python3 tests/nbd/test_nbd_tls.py --bin-dir build
"""

import os
import random
import shutil
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nbd_common import *  # noqa: E402,F401,F403
import nbd_common as nc  # noqa: E402
from tls_common import make_pki, start_tls_ring  # noqa: E402

MiB = 1 << 20
COPY_BYTES = 16 * MiB


def libnbd_dir(ctx, tls_dir):
    """The same certificate in the file names libnbd (GnuTLS) looks for."""
    d = ctx.mkdtemp("libnbd-")
    for src, dst in (("ca.crt", "ca-cert.pem"), ("tls.crt", "client-cert.pem"), ("tls.key", "client-key.pem")):
        shutil.copy(os.path.join(tls_dir, src), os.path.join(d, dst))
    return d


def test(ctx, args):
    nc.require_tools("nbdinfo", "nbdcopy")
    dirs = make_pki(ctx, 3, [("admin", "admin", []), ("gw", "read-write", ["--host", "127.0.0.1"]),
                             ("rw", "read-write", []), ("ro", "read-only", []),
                             ("gwro", "read-only", ["--host", "127.0.0.1"]),
                             ("bob", "read-write", ["--namespace", "photos"])],
                    other_ca_clients=[("stranger", "read-write", [])])
    ctx.cli_tls_dir = dirs["admin"]
    nodes = start_tls_ring(ctx, dirs, 3, nc.FAST_FD)
    first = nodes[0]
    nc.create_volume(ctx, first, "vol", "64M")
    gw = ctx.gateway(nodes, extra_args=["--tls-dir", dirs["gw"]])
    gw.start()

    def uri(who):
        return f"nbds://{gw.addr}/vol?tls-certificates={libnbd_dir(ctx, dirs[who])}"

    info = nc.nbdinfo(uri("rw"))
    exp = info["exports"][0]
    check(info["TLS"] is True and exp["export-size"] == 64 * MiB and exp["is_read_only"] is False,
          f"nbdinfo over TLS (read-write): {info}")
    exp = nc.nbdinfo(uri("ro"))["exports"][0]
    check(exp["is_read_only"] is True, f"nbdinfo over TLS (read-only certificate): {exp}")

    r = nc.tool(["nbdinfo", f"nbd://{gw.addr}/vol"], "nbdinfo without TLS", timeout=30, want=None)
    check(r.returncode != 0, f"nbdinfo without TLS was served: {r.describe()}")
    wait_until(lambda: "sent without TLS (this gateway requires STARTTLS)" in gw.log(), 10,
               "the gateway to log the plaintext client")
    r = nc.tool(["nbdinfo", uri("stranger")], "nbdinfo with another CA's certificate", timeout=30, want=None)
    check(r.returncode != 0, f"nbdinfo with another CA's certificate was served: {r.describe()}")
    wait_until(lambda: "TLS handshake failed" in gw.log(), 10, "the gateway to log the failed handshake")

    src, back = ctx.path("src.bin"), ctx.path("back.bin")
    want = nc.random_file(src, COPY_BYTES, random.Random(args.seed))
    nc.tool(["nbdcopy", src, uri("rw")], "nbdcopy in over TLS", timeout=120)
    nc.tool(["nbdcopy", uri("rw"), back], "nbdcopy out over TLS", timeout=120)
    got = nc.sha256_range(back, 0, COPY_BYTES)
    check(got == want, f"nbdcopy over TLS: sha256 {got} != {want}")
    # A gateway whose own certificate is read-only serves every export read-only; one with a
    # namespace-restricted certificate refuses to start.
    gw_ro = ctx.gateway(nodes, name="block-ro", extra_args=["--tls-dir", dirs["gwro"]])
    gw_ro.start()
    exp = nc.nbdinfo(f"nbds://{gw_ro.addr}/vol?tls-certificates={libnbd_dir(ctx, dirs['rw'])}")["exports"][0]
    check(exp["is_read_only"] is True, f"nbdinfo at a gateway with a read-only certificate: {exp}")
    check("has a read-only certificate: serving every volume read-only" in gw_ro.log(),
          "the read-only gateway did not say why it serves read-only")
    check(gw_ro.stop() == 0, "the read-only gateway did not exit cleanly")
    r = harness.run_tool([ctx.block_bin, "--cluster", first.addr, "--listen", "127.0.0.1:0", "--tls-dir", dirs["bob"]],
                         30)
    check(r.returncode == 2 and "is restricted to one namespace" in r.stderr.decode() + r.stdout.decode(),
          f"ringstore-block with a namespace-restricted certificate: {r.describe()}")
    check(gw.stop() == 0, "the gateway did not exit cleanly")
    for n in nodes:
        check(n.stop() == 0, f"{n.name} did not exit cleanly")
    return ("NBD STARTTLS: info, read-only role, plaintext and other-CA refusals, 16 MiB nbdcopy round trip, "
            "read-only and namespace gateway certificates")


if __name__ == "__main__":
    harness.run(test, "test_nbd_tls", __doc__)
