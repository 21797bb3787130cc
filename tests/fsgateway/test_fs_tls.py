#!/usr/bin/env python3
"""The filesystem gateway on a TLS cluster (issue 8).

A 3-node TLS ring; an admin certificate creates the filesystem (a read-write one may not).
  * mount A, with a read-write certificate: files (1 MiB of random bytes and a small one), a
    directory, a rename, a symlink and an xattr are written and read back, which takes named
    writes of inodes, directories and chunks over TLS;
  * mount B, with a read-only certificate, mounts read-only by itself: it reads A's files and
    sees A's later change (WATCH is allowed to read-only clients), and a write gets EROFS;
  * ringstore-fs with a namespace-restricted certificate refuses to start, and says why;
  * after a remount of A, everything reads back the same.

Run: /usr/bin/python3 tests/fsgateway/test_fs_tls.py --bin-dir build
"""

import errno
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fs_common  # noqa: E402
from fs_common import EXIT_OK, check, expect_rc, harness, log, wait_until  # noqa: E402
from tls_common import make_pki, start_tls_ring  # noqa: E402

MiB = 1 << 20


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def test(ctx, args):
    fs_common.require_fuse()
    dirs = make_pki(ctx, 3, [("admin", "admin", []), ("rw", "read-write", []), ("ro", "read-only", []),
                             ("bob", "read-write", ["--namespace", "photos"])])
    ctx.cli_tls_dir = dirs["admin"]
    nodes = start_tls_ring(ctx, dirs, 3, fs_common.FAST_FD)
    ctx.cli_tls_dir = dirs["rw"]
    r = ctx.cli("fs", "create", "shared", cluster=nodes[0])
    check(r.returncode != EXIT_OK and "may not write namespace 'ringstore.fs-catalog'" in r.stderr.decode(),
          f"fs create with read-write: {r.describe()}")
    ctx.cli_tls_dir = dirs["admin"]
    expect_rc(ctx.cli("fs", "create", "shared", cluster=nodes[0]), EXIT_OK, "fs create with admin")

    a = fs_common.mount(ctx, nodes, fs="shared", name="fs-rw", extra_args=["--tls-dir", dirs["rw"]])
    big = os.urandom(MiB + 12345)
    write(os.path.join(a.mountpoint, "big.bin"), big)
    os.mkdir(os.path.join(a.mountpoint, "dir"))
    write(os.path.join(a.mountpoint, "dir", "small.txt"), b"hello over TLS\n")
    os.rename(os.path.join(a.mountpoint, "dir", "small.txt"), os.path.join(a.mountpoint, "dir", "note.txt"))
    os.symlink("dir/note.txt", os.path.join(a.mountpoint, "link"))
    os.setxattr(os.path.join(a.mountpoint, "big.bin"), "user.colour", b"blue")
    check(read(os.path.join(a.mountpoint, "big.bin")) == big, "mount A: big.bin reads back wrong")

    b = fs_common.mount(ctx, nodes, fs="shared", name="fs-ro", extra_args=["--tls-dir", dirs["ro"]])
    wait_until(lambda: "has a read-only certificate: mounting read-only" in b.log(), 5,
               "mount B to say it mounts read-only")
    check(read(os.path.join(b.mountpoint, "big.bin")) == big, "mount B: big.bin reads back wrong")
    check(read(os.path.join(b.mountpoint, "link")) == b"hello over TLS\n", "mount B: the symlink reads wrong")
    check(os.getxattr(os.path.join(b.mountpoint, "big.bin"), "user.colour") == b"blue", "mount B: xattr lost")
    try:
        write(os.path.join(b.mountpoint, "nope"), b"x")
        check(False, "mount B (read-only certificate) let a file be created")
    except OSError as e:
        check(e.errno == errno.EROFS, f"mount B: creating a file gave {e!r}, want EROFS")
    write(os.path.join(a.mountpoint, "dir", "note.txt"), b"changed on A\n")
    wait_until(lambda: read(os.path.join(b.mountpoint, "dir", "note.txt")) == b"changed on A\n", 3,
               "mount B to see A's change")

    cmd = [ctx.fs_bin, ctx.mkdtemp("mnt-"), "--cluster", nodes[0].addr, "--fs", "shared", "--tls-dir", dirs["bob"]]
    r = harness.run_tool(cmd, 30)
    check(r.returncode == 2 and "is restricted to one namespace" in r.stderr.decode() + r.stdout.decode(),
          f"ringstore-fs with a namespace-restricted certificate: {r.describe()}")

    check(b.stop() == 0, "mount B did not stop cleanly")
    check(a.stop() == 0, "mount A did not stop cleanly")
    a.start()
    check(read(os.path.join(a.mountpoint, "big.bin")) == big, "after remount: big.bin reads back wrong")
    check(sorted(os.listdir(os.path.join(a.mountpoint, "dir"))) == ["note.txt"], "after remount: dir lists wrong")
    check(a.stop() == 0, "mount A did not stop cleanly after the remount")
    for n in nodes:
        check(n.stop() == 0, f"{n.name} did not exit cleanly")
    log("done")
    return ("TLS mounts: read-write writes and reads back, read-only mounts read-only and sees changes, "
            "a namespace certificate is refused, only admin creates")


if __name__ == "__main__":
    harness.run(test, "test_fs_tls", __doc__)
