#!/usr/bin/env python3
"""A node dies during a large copy onto the mount: a 3-node ring (fast failure detection,
fs_common.FAST_FD), a ringstore-fs mount, and `dd bs=1M conv=fsync` copying 300 MiB of random
data from a local file onto it; at 127 MiB (as the second 64 MiB writeback begins) one node
(chosen by the seed) gets SIGKILL. The copy must still succeed (exit 0, fsync included) and the file on the
mount must have the source's size and sha256, read both through the same mount (its page cache
dropped) and, after the gateway is restarted (nothing cached), through a fresh mount, all while
the node stays down."""

import hashlib
import os
import random
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fs_common  # noqa: E402
from fs_common import check, harness, log  # noqa: E402

COPY_MIB = 300
DIRTY_MIB = 64  # the gateway writes back each 64 MiB dirty (--dirty-mb)
# The node dies once dd's offset reaches 127 MiB: its next write fills the second 64 MiB of
# dirty data and blocks while the gateway writes it back, so the node most likely dies in the
# middle of a writeback of 64 chunks.
KILL_AT_MIB = 2 * DIRTY_MIB - 1
COPY_TIMEOUT_S = 300


def make_source(path, mib, rng):
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(mib):
            block = rng.randbytes(1 << 20)
            h.update(block)
            f.write(block)
    return h.hexdigest()


def written_by(proc, path):
    """How far proc has written into path: the position of its fd open on path (from
    /proc/PID/fdinfo), or None if it has no such fd (not yet, or no longer)."""
    try:
        for fd in os.listdir(f"/proc/{proc.pid}/fd"):
            try:
                if os.readlink(f"/proc/{proc.pid}/fd/{fd}") == path:
                    with open(f"/proc/{proc.pid}/fdinfo/{fd}") as f:
                        for line in f:
                            if line.startswith("pos:"):
                                return int(line.split()[1])
            except OSError:
                continue
    except OSError:
        return None
    return None


def sha256_uncached(path):
    """sha256 of path as the gateway serves it: the kernel's cached pages of it dropped first."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return harness.sha256_file(path)


def test(ctx, args):
    fs_common.require_fuse()
    fs_common.need_tools("dd")
    rng = random.Random(args.seed)
    ring = fs_common.cluster_with_fs(ctx, nodes=3, node_args=fs_common.FAST_FD)
    gw = fs_common.mount(ctx, ring, extra_args=["--dirty-mb", str(DIRTY_MIB)])
    t = fs_common.Timings()
    src = ctx.path("source.bin")
    with t.step(f"make {COPY_MIB} MiB of random data locally"):
        want = make_source(src, COPY_MIB, rng)
    log(f"source sha256 {want}")
    dst = os.path.join(gw.mountpoint, "big.bin")
    victim = rng.choice(ring)
    dd_log = ctx.path("dd.log")
    with t.step(f"dd {COPY_MIB} MiB onto the mount, {victim.name} killed at ~{KILL_AT_MIB} MiB"):
        t0 = time.monotonic()
        dd = harness.spawn(["dd", f"if={src}", f"of={dst}", "bs=1M", "conv=fsync", "status=none"], dd_log)

        def progress():
            if dd.poll() is not None:
                return "exited"
            pos = written_by(dd, dst)
            return pos is not None and pos >= KILL_AT_MIB << 20

        got = harness.wait_until(progress, 120, f"dd to write {KILL_AT_MIB} MiB onto the mount")
        with open(dd_log, "rb") as f:
            dd_out = f.read().decode(errors="replace").strip()
        check(got is True, f"dd exited (status {dd.returncode}) before {KILL_AT_MIB} MiB were written, so no node "
                           f"died during the copy: {dd_out!r}")
        log(f"dd has written {written_by(dd, dst) or 0} bytes after {time.monotonic() - t0:.2f}s; "
            f"killing {victim.name}")
        victim.kill9()
        t_kill = time.monotonic()
        try:
            rc = dd.wait(timeout=COPY_TIMEOUT_S)
        except Exception:
            raise harness.TestFailure(f"dd did not finish within {COPY_TIMEOUT_S}s of {victim.name} dying")
        with open(dd_log, "rb") as f:
            dd_out = f.read().decode(errors="replace").strip()
        log(f"dd exited {rc} {time.monotonic() - t_kill:.2f}s after the kill ({time.monotonic() - t0:.2f}s in all)")
        check(rc == 0, f"dd onto the mount failed after {victim.name} was killed: exit {rc}, output {dd_out!r}")
    size = os.stat(dst).st_size
    check(size == COPY_MIB << 20, f"the copy on the mount is {size} bytes, want {COPY_MIB << 20}")
    with t.step("sha256 through the same mount (page cache dropped)"):
        got = sha256_uncached(dst)
        check(got == want, f"the copy on the mount has sha256 {got}, the source {want}")
    with t.step("restart the gateway"):
        rc = gw.stop()
        check(rc == 0, f"ringstore-fs exited {rc} on SIGTERM (after the copy, with {victim.name} down)")
        check(not gw.mounted(), f"{gw.mountpoint} still mounted after ringstore-fs exited")
        gw.start()
    with t.step(f"sha256 through a fresh mount ({victim.name} still down)"):
        size = os.stat(dst).st_size
        check(size == COPY_MIB << 20, f"after the gateway restart the copy is {size} bytes, want {COPY_MIB << 20}")
        got = sha256_uncached(dst)
        check(got == want, f"after the gateway restart the copy has sha256 {got}, the source {want}")
    rc = gw.stop()
    check(rc == 0, f"ringstore-fs exited {rc} on SIGTERM")
    log("timings: " + t.summary())
    return f"{COPY_MIB} MiB copied intact with {victim.name} killed mid-copy (steps: {t.summary()})"


if __name__ == "__main__":
    harness.run(test, "test_fs_failover", __doc__)
